// Package export writes images out of the places they live in: as one tar
// that docker load, ctr images import, podman load and skopeo all accept
// (Job.Run; ocilayout.WriteFolder turns it into a layout folder), or
// streamed into the Docker engine (Load, through daemon.Load). It names the
// images and resolves them (Sources, resolveAll), applies an export's
// defaults (NewJob), and holds the tar's records (which images are kept,
// index.json, manifest.json, the sorted entries: pure and table-tested)
// and the two writers: a regular file written at offsets, blobs fetched in
// parallel, and any other writer as a stream. Its steps are shown through
// progress.Lines, as BuildKit's image exporter shows them.
//
// Content is read only through place.Reader and the remotes.Fetcher values
// it hands out.
package export
