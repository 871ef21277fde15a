package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sandlot/sandlot/images"
)

const imagesUsage = `usage: sandlot images <list|preload|import> [flags] [args]

  list                       what the server's image cache holds: names, sizes, last use
  preload IMAGE...           put Docker Hub images into the cache ahead of time (nginx:alpine redis:7 ...)
  import FILE.tar            load the images of a docker save archive (for hosts without internet)

flags (also SANDLOT_SERVER, SANDLOT_ADMIN_TOKEN):
`

// imagesCommand talks to a running server's image cache through its API (preload and import need the admin
// token).
func imagesCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newClientFlags("images", imagesUsage, "list, preload or import", stderr)
	verb, c, err := fs.parse(args, getenv)
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
		}
		return c.list(ctx, stdout)
	case "preload":
		if fs.NArg() == 0 {
			return errors.New("preload needs image names: sandlot images preload nginx:alpine redis:7")
		}
		return c.preload(ctx, fs.Args(), stdout)
	case "import":
		if fs.NArg() != 1 {
			return errors.New("import needs one file: sandlot images import FILE.tar (made by docker save)")
		}
		return c.importFile(ctx, fs.Arg(0), stdout)
	default:
		fs.Usage()
		return fmt.Errorf("unknown images command %q", verb)
	}
}

func (c apiClient) list(ctx context.Context, stdout io.Writer) error {
	resp, err := c.do(ctx, "GET", "/api/v1/images", "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct{ Images []images.Image }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tSIZE\tLAST USED\tDIGEST")
	for _, img := range out.Images {
		used := "-"
		if img.LastUsed != nil {
			used = img.LastUsed.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s:%s\t%s\t%s\t%s\n", img.Name, img.Tag, humanBytes(img.Size), used, img.Digest[:19])
	}
	return tw.Flush()
}

func (c apiClient) preload(ctx context.Context, refs []string, stdout io.Writer) error {
	body, _ := json.Marshal(map[string][]string{"images": refs})
	resp, err := c.do(ctx, "POST", "/api/v1/images/preload", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if !bytes.Contains(lines.Bytes(), []byte(`"image"`)) { // the last line: {"finished":true[,"error":...]}
			var end struct{ Error string }
			if err := json.Unmarshal(lines.Bytes(), &end); err != nil || end.Error != "" {
				return errors.New(cmp.Or(end.Error, lines.Text()))
			}
			return nil
		}
		var p images.Progress
		if err := json.Unmarshal(lines.Bytes(), &p); err != nil {
			return fmt.Errorf("preload: the server said %q", lines.Text())
		}
		switch {
		case p.Error != "":
			fmt.Fprintf(stdout, "%s: failed: %s\n", p.Image, p.Error)
		case p.Digest != "":
			fmt.Fprintf(stdout, "%s: cached (%s)\n", p.Image, p.Digest)
		default:
			fmt.Fprintf(stdout, "%s: %s of %s\n", p.Image, humanBytes(p.Done), humanBytes(p.Total))
		}
	}
	if err := lines.Err(); err != nil {
		return err
	}
	return errors.New("the server stopped answering before the preload finished")
}

func (c apiClient) importFile(ctx context.Context, path string, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	resp, err := c.do(ctx, "POST", "/api/v1/images/import", "application/x-tar", f)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct{ Images []string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return err
	}
	for _, name := range out.Images {
		fmt.Fprintf(stdout, "imported %s\n", name)
	}
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
}
