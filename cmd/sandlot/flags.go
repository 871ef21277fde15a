package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
)

// settle gives every flag not set on the command line its value from SANDLOT_<FLAG>, else from the config file
// (a JSON object whose keys are flag names), else its default. The config file is named by --config or
// SANDLOT_CONFIG.
func settle(fs *flag.FlagSet, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	file := map[string]any{}
	if path := configPath(fs, getenv); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := json.Unmarshal(data, &file); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		for k := range file {
			if fs.Lookup(k) == nil {
				return fmt.Errorf("config file %s: unknown setting %q", path, k)
			}
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		value, ok := getenv(envName(f.Name)), true
		if value == "" {
			var v any
			if v, ok = file[f.Name]; ok {
				value = fmt.Sprint(v)
			}
		}
		if ok && value != "" {
			if e := fs.Set(f.Name, value); e != nil {
				err = fmt.Errorf("%s: %w", f.Name, e)
			}
		}
	})
	return err
}

func configPath(fs *flag.FlagSet, getenv func(string) string) string {
	if f := fs.Lookup("config"); f != nil && f.Value.String() != "" {
		return f.Value.String()
	}
	return getenv("SANDLOT_CONFIG")
}

func envName(flagName string) string {
	return "SANDLOT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
