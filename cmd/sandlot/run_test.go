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
		{[]string{"sandlot", "serve", "--pool", "1-node"}, `--pool: "1-node" is not template=count`},
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
	env := map[string]string{"SANDLOT_NETWORK": "bridge", "SANDLOT_NODE_DISK": "2GiB"}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"sandlot", "check"}, func(k string) string { return env[k] }, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	for _, want := range []string{"sessions get bridge networks", "isolation: userns\n",
		"node disk: 2048 MiB per node for everything it writes"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check printed %q, without %q", out.String(), want)
		}
	}
	if strings.Contains(out.String(), "WARNING") {
		t.Errorf("check warns about userns isolation: %q", out.String())
	}
	env["SANDLOT_NETWORK"] = "mesh"
	err := run(context.Background(), []string{"sandlot", "check"}, func(k string) string { return env[k] }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `unknown network kind "mesh"`) {
		t.Fatalf("bad SANDLOT_NETWORK: %v", err)
	}
}

func TestSizeFlag(t *testing.T) {
	for in, want := range map[string]int64{"10GiB": 10 << 30, "10G": 10 << 30, "10gb": 10 << 30, "512MiB": 512 << 20,
		"512": 512 << 20, "1T": 1 << 40, "64m": 64 << 20} {
		var s size
		if err := s.Set(in); err != nil || s.bytes != want {
			t.Errorf("%q: %d, %v; want %d", in, s.bytes, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "ten", "-1G", "5X", "1.5G", "99999999999T"} {
		var s size
		if err := s.Set(in); err == nil {
			t.Errorf("%q: accepted as %d", in, s.bytes)
		}
	}
}
