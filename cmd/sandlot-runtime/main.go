// Command sandlot-runtime is the OCI runtime of Sandlot's node engine: runc, plus what a user-namespaced node needs
// (its own cgroups handed over, a disk of its own). See package noderuntime; ops/node-engine installs it.
package main

import (
	"os"

	"github.com/sandlot/sandlot/internal/noderuntime"
)

func main() { os.Exit(noderuntime.Main(os.Args[1:], os.Stderr)) }
