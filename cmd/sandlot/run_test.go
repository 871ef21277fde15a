package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

func TestRunRefusesBadCommands(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"sandlot"}, "no command"},
		{[]string{"sandlot", "bogus"}, `unknown command "bogus"`},
		{[]string{"sandlot", "gc"}, "gc needs --session ID or --all"},
		{[]string{"sandlot", "check", "--nope"}, "flag provided but not defined"},
		{[]string{"sandlot", "serve", "--max-upload", "0"}, "--max-upload 0: at least 1"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		err := run(context.Background(), tt.args, func(string) string { return "" }, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.want)
		}
	}
}

func TestRunCheckReadsEnvironment(t *testing.T) {
	if os.Getenv("SANDLOT_REQUIRE_DOCKER") != "1" {
		t.Skip("needs the engine (make test sets SANDLOT_REQUIRE_DOCKER=1)")
	}
	env := map[string]string{"SANDLOT_NETWORK": "bridge", "SANDLOT_SECURITY": "caps"}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"sandlot", "check"}, func(k string) string { return env[k] }, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "sessions get bridge networks; nodes run with the caps profile") {
		t.Fatalf("check printed %q", out.String())
	}
	env["SANDLOT_NETWORK"] = "mesh"
	err := run(context.Background(), []string{"sandlot", "check"}, func(k string) string { return env[k] }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `unknown network kind "mesh"`) {
		t.Fatalf("bad SANDLOT_NETWORK: %v", err)
	}
}
