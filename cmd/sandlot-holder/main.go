// Command sandlot-holder keeps one shell and its recent output in a node, so that the shell outlives the Sandlot
// server that opened it (package internal/holder). Sandlot copies it into a node and starts it with a detached
// exec:
//
//	sandlot-holder --socket /run/sandlot/hold/1.sock --size 80x24 --keep 1048576 --orphan 30m -- bash -l
//
// It is built static (CGO_ENABLED=0) so that it runs in any node image.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sandlot/sandlot/internal/holder"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sandlot-holder:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("sandlot-holder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "", "the unix socket to serve Sandlot on")
	size := fs.String("size", "80x24", "the terminal's size, COLSxROWS")
	keep := fs.Int("keep", 1<<20, "bytes of output kept")
	orphan := fs.Duration("orphan", 30*time.Minute, "end the shell after this long without a Sandlot")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *socket == "" {
		return fmt.Errorf("--socket is required")
	}
	var cols, rows uint16
	if _, err := fmt.Sscanf(*size, "%dx%d", &cols, &rows); err != nil || cols == 0 || rows == 0 {
		return fmt.Errorf("--size %q: want COLSxROWS", *size)
	}
	if *keep < 4<<10 || *keep > 64<<20 {
		return fmt.Errorf("--keep %d: 4 KiB to 64 MiB", *keep)
	}
	return holder.Serve(holder.Config{Socket: *socket, Cmd: fs.Args(), Cols: cols, Rows: rows, Keep: *keep,
		Orphan: *orphan})
}
