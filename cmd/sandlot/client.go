package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// clientFlags is a client subcommand's flag set: --server and --admin-token (also SANDLOT_SERVER,
// SANDLOT_ADMIN_TOKEN) beside the ones define adds. parse reads args (its verb first, then flags) and returns the
// verb and the client.
type clientFlags struct {
	*flag.FlagSet
	server, token *string
	verbs         string // for the error without a verb: "list, preload or import"
}

func newClientFlags(name, usage, verbs string, stderr io.Writer) *clientFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	return &clientFlags{FlagSet: fs, verbs: verbs,
		server: fs.String("server", "http://localhost:8080", "the Sandlot server"),
		token:  fs.String("admin-token", "", "the server's admin token")}
}

func (f *clientFlags) parse(args []string, getenv func(string) string) (string, apiClient, error) {
	if len(args) == 0 {
		f.Usage()
		return "", apiClient{}, fmt.Errorf("%s needs %s", f.Name(), f.verbs)
	}
	if err := f.Parse(args[1:]); err != nil {
		return "", apiClient{}, err
	}
	if err := settle(f.FlagSet, getenv); err != nil {
		return "", apiClient{}, err
	}
	return args[0], apiClient{base: strings.TrimRight(*f.server, "/"), token: *f.token}, nil
}

// apiClient calls a running server's API for the client subcommands (images, workshop), with the admin token.
type apiClient struct{ base, token string }

func (c apiClient) do(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the server at %s does not answer: %w", c.base, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		defer resp.Body.Close()
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return nil, fmt.Errorf("%s (%s)", e.Error.Message, resp.Status)
		}
		return nil, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return resp, nil
}

// json calls path and decodes its JSON answer into out; with in, it sends in as JSON (by POST).
func (c apiClient) json(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	contentType := ""
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, contentType = bytes.NewReader(data), "application/json"
	}
	resp, err := c.do(ctx, method, path, contentType, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}
