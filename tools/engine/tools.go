//go:build tools

// Package engine pins the Docker 29-line engine (dockerd from moby v2 with
// containerd v2) that the integration tests load image tars into. It is a
// module of its own so that the main go.mod does not carry the engine's
// dependencies; make engine builds both commands into bin/tools.
package engine

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/moby/moby/v2/cmd/dockerd"
)
