package noderuntime

import (
	"strconv"
	"strings"
)

// command is what a runc command line asks for: the subcommand, its container id and the flags this runtime
// reads. Everything else in the line is passed to runc untouched.
type command struct {
	sub     string // create, delete, start, exec, ...; "" when there is none (runc --version)
	id      string // the container id: the last argument of create and delete
	root    string // --root: runc's state directory
	log     string // --log: where runc writes its errors, which the caller reads
	json    bool   // --log-format json
	fds     int    // create --preserve-fds: extra file descriptors runc must get from 3 on
	bundle  string // create --bundle
	pidFile string // create --pid-file
	force   bool   // delete --force
}

// globalWithValue are runc's global flags that take a value (runc 1.1).
var globalWithValue = map[string]bool{"log": true, "log-format": true, "root": true, "criu": true, "rootless": true}

// parse reads a runc command line (without the program name).
func parse(args []string) command {
	var c command
	i := 0
	for ; i < len(args); i++ {
		name, value, hasValue, isFlag := flag(args[i])
		if !isFlag {
			break
		}
		if globalWithValue[name] && !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		switch name {
		case "root":
			c.root = value
		case "log":
			c.log = value
		case "log-format":
			c.json = value == "json"
		}
	}
	if i == len(args) {
		return c
	}
	c.sub = args[i]
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		name, value, hasValue, isFlag := flag(rest[j])
		if !isFlag {
			c.id = rest[j] // the last positional argument wins: runc's is the container id
			continue
		}
		takesValue := name == "bundle" || name == "b" || name == "pid-file" || name == "console-socket" ||
			name == "preserve-fds"
		if takesValue && !hasValue && j+1 < len(rest) {
			j++
			value = rest[j]
		}
		switch name {
		case "bundle", "b":
			c.bundle = value
		case "pid-file":
			c.pidFile = value
		case "force", "f":
			c.force = true
		case "preserve-fds":
			c.fds, _ = strconv.Atoi(value)
		}
	}
	return c
}

// flag splits "--name=value", "--name" or "-n" into its parts; isFlag is false for anything else.
func flag(arg string) (name, value string, hasValue, isFlag bool) {
	if len(arg) < 2 || arg[0] != '-' || arg == "--" {
		return "", "", false, false
	}
	name = strings.TrimLeft(arg, "-")
	name, value, hasValue = strings.Cut(name, "=")
	return name, value, hasValue, true
}
