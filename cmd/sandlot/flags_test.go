package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The command line wins, then SANDLOT_* variables, then the config file, then the defaults.
func TestSettlePrecedence(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "sandlot.json")
	if err := os.WriteFile(cfg, []byte(`{"listen": ":7000", "max-instances": 3, "default-duration": "1h", "network": "bridge"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.String("config", "", "")
	nodes := nodeFlags(fs)
	o := serveFlags(fs)
	env := map[string]string{"SANDLOT_CONFIG": cfg, "SANDLOT_MAX_INSTANCES": "4", "SANDLOT_NETWORK": "overlay",
		"SANDLOT_MAX_UPLOAD": "8"}
	if err := parse(fs, []string{"--network", "auto"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *o.listen != ":7000" || *o.maxInstances != 4 || *o.defaultDuration != time.Hour || *nodes.network != "auto" ||
		*o.maxDuration != 8*time.Hour || *o.maxUploadMiB != 8 {
		t.Fatalf("listen %s, max-instances %d, default-duration %s, network %s, max-duration %s, max-upload %d",
			*o.listen, *o.maxInstances, *o.defaultDuration, *nodes.network, *o.maxDuration, *o.maxUploadMiB)
	}
}

func TestSettleRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"unknown key": `{"listne": ":1"}`, "not JSON": `listen=:1`,
		"bad value": `{"max-instances": "many"}`} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.String("config", "", "")
		serveFlags(fs)
		if err := parse(fs, []string{"--config", path}, func(string) string { return "" }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
