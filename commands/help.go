package commands

// The long help texts and examples of the commands; the flags say the rest.

const createLong = `Combine images and indexes into one multi-platform index and push it to tags.

A SOURCE is a reference (NAME[:TAG][@DIGEST]), a bare digest (its repository is
the one named by the tags and other sources), a descriptor in JSON, an OCI
layout (oci-layout://PATH[:TAG][@DIGEST]), an image tar
(archive://FILE[:NAME][@DIGEST]: docker save, podman save, skopeo, buildx,
docker imgx export; gzip or zstd too; NAME picks one image of several), or an
image of the Docker engine (docker-daemon://NAME[:TAG]). A bare argument that
names a file is refused: write archive://FILE. Content is copied by digest first
(mounted within one registry, streamed between registries; plain layers, as a
classic docker save or the Docker engine gives them, are compressed for a
registry: gzip unless --compression says otherwise); tags move last,
all or none: when one cannot be moved, those already moved are put back.
The digest of the result is printed on stdout.

A single source that is one single-platform image becomes an index holding
it, as docker buildx imagetools create does: the tag gets a new digest, not
the image's. --prefer-index=false tags the image manifest as it is, and
docker imgx copy copies an image or index with its digest unchanged.`

const createExample = `  # Combine per-architecture builds into one multi-platform tag
  docker imgx create -t registry.example/app:1.2.3 \
    registry.example/app:1.2.3-amd64 registry.example/app:1.2.3-arm64

  # Tag a release without changing its digest
  docker imgx create -t registry.example/app:1.2 -t registry.example/app:latest registry.example/app@sha256:3f9a...

  # Add or replace a platform in an existing image
  docker imgx create --append -t registry.example/app:edge registry.example/app:edge-riscv64

  # See the index first: keep two platforms, push nothing
  docker imgx create --dry-run -p linux/amd64,linux/arm64 registry.example/app:all

  # Annotate the index and one platform's descriptor
  docker imgx create --oci --annotation org.opencontainers.image.source=https://git.example/app \
    --annotation 'manifest-descriptor[linux/arm64]:com.example.tuned=true' \
    -t registry.example/app:1.2.3 registry.example/app:1.2.3-amd64 registry.example/app:1.2.3-arm64

  # Sources from a file, the result's descriptor into a metadata file
  docker imgx create -f sources.txt --metadata-file meta.json -t registry.example/app:1.2.3

  # From an OCI layout folder to a registry
  docker imgx create -t registry.example/app:1.2.3 oci-layout://./out:1.2.3

  # Push local builds of the Docker engine as one multi-platform image
  docker imgx create -t registry.example/app:1.2.3 docker-daemon://app:amd64 docker-daemon://app:arm64

  # Push an image tar (docker save, podman save); NAME picks one of several
  docker imgx create -t registry.example/app:1.2.3 archive://app.tar
  docker imgx create -t registry.example/app:1.2.3 archive://images.tar.gz:registry.example/app:1.2.3

  # An index of more than 10000 images and attestations: raise the manifest limit
  docker imgx create --max-manifests 50000 -t mirror.internal/app:all registry.example/app:all

  # Plain layers (a classic docker save, the Docker engine) pushed zstd-compressed (default: gzip)
  docker imgx create --compression zstd -t registry.example/app:1.2.3 archive://app.tar`

const exportLong = `Write images from registries, OCI layouts, image tars (archive://FILE[:NAME])
or the Docker engine (docker-daemon://NAME[:TAG]) into one tar: a Docker image tar
(manifest.json, for docker load) and an OCI image layout (for ctr images import,
podman load and skopeo) at once. Blobs are the registry's bytes, checked against
their digests while they are copied; the output file appears only when complete.
With --load, the same tar is streamed into the Docker engine of the current
context (DOCKER_HOST, docker context) and its answer checked, without a file;
each registry image of one platform the engine pulls itself instead, by the
digest resolved (as fast as docker pull), and the rest go in one tar, unless
it cannot reach or trust the registry (--load-via).`

const exportExample = `  # A docker save of an image you never pulled (the local platform)
  docker imgx export -o app.tar registry.example/app:1.2.3
  docker load -i app.tar

  # Every platform, into an OCI layout folder
  docker imgx export -p all -o oci-layout://./app registry.example/app:1.2.3

  # A compressed tar: gzip by the name (.tar.gz, .tgz), zstd by .tar.zst or --compression
  docker imgx export -o app.tar.gz registry.example/app:1.2.3
  docker imgx export --compression zstd registry.example/app:1.2.3 > app.tar.zst

  # Two images in one tar, named as you want them loaded
  docker imgx export -o both.tar --name app:1 --name tools:1 registry.example/app:1 registry.example/tools:1

  # Into the Docker engine of the current context, no file in between
  docker imgx export --load registry.example/app:1.2.3

  # The same as a tar streamed into the engine, never the engine's own pull
  docker imgx export --load --load-via stream registry.example/app:1.2.3

  # Air-gapped copy: every platform of the images into one tar ...
  docker imgx export -p all -o images.tar registry.example/app:1.2.3 registry.example/db:16
  # ... and, on the other side, each pushed from the tar with its digests unchanged
  docker imgx create --prefer-index=false -t mirror.internal/app:1.2.3 archive://images.tar:registry.example/app:1.2.3

  # Images that list more than 10000 manifests and attestations in all
  docker imgx export --max-manifests 50000 -p all -o all.tar registry.example/app:1 registry.example/db:16`

const rootLong = `docker imgx works on images in registries, OCI layouts, image tars and the
Docker engine, without a Docker daemon of its own: combine images into
multi-platform indexes (create), look at them (inspect), write them into a tar
that docker, containerd, podman and skopeo load (export), and move sets of
them between places with their digests kept (copy).`
