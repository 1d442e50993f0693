// Package export writes images out of the places they live in: as one tar
// that docker load, ctr images import, podman load and skopeo all accept
// (Write; ocilayout.WriteFolder turns it into a layout folder), or streamed
// into the Docker engine's image-load API (ToEngine). It holds the tar's records
// (which images are kept, index.json, manifest.json, the sorted entries:
// pure and table-tested) and the two writers: a regular file written at
// offsets, blobs fetched in parallel, and any other writer as a stream.
//
// Content is read only through the remotes.Fetcher values handed in. It
// imports imagetools (the sentinel errors), ref, oci and progress of the
// engine, and containerd and moby libraries; never a place or commands.
package export
