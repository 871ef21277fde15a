// Package instance runs Sandlot's lab nodes on a Docker engine: one private network per session, one
// Docker-in-Docker container per node, exec into nodes, files in nodes (through the engine's archive API), and
// garbage collection of whatever a dead session left.
//
// It knows nothing about Redis or HTTP. Everything it creates carries the labels sandlot.session and
// sandlot.instance, and it never touches an object without them.
package instance
