package commands

const copyLong = `Copy images, unchanged, between registries, OCI layouts and image tars.

Each image or index is copied as it is: its manifest bytes, so its digest, are
kept (unlike create, which may wrap a single image in an index). A SOURCE is a
reference with a tag or a digest (a repository alone is refused: name what to
copy, or give --all-tags to copy every tag of it), an OCI layout
(oci-layout://PATH:TAG; without TAG, every image it names), an image tar
(archive://FILE[:NAME]: without NAME, every image in it) or an image of the
Docker engine (docker-daemon://NAME:TAG). Plain layers, as a classic docker
save tar or the Docker engine gives them, are compressed for a registry
(gzip, as docker push does; --compression zstd or none): the config and its
diff IDs are kept, the digest is the copy's own, and the table says so.

A TARGET with a tag or digest takes one source. Otherwise TARGET is a prefix:
each image goes to the prefix plus its repository path
(docker.io/library/alpine:3.20 to PREFIX/library/alpine:3.20; --scoped keeps
the registry: PREFIX/docker.io/library/alpine:3.20), with its tag or digest.
An image tar as TARGET (archive://FILE) is one bundle that docker load, ctr
import, podman load and skopeo read, each image under its full name; an OCI
layout (oci-layout://PATH) holds the images each under its full name too
(io.containerd.image.name, its tag as org.opencontainers.image.ref.name),
added to what it holds.

Blobs the target holds are not sent, blobs in another repository of the same
registry are mounted, and a tag already at the digest is not written: a second
run of the same set only reads. Cosign signatures and OCI referrers travel
along, of each image and of each manifest an index lists (--referrers=false:
not): into an image tar or a layout as tags beside the image (referrers known
through the registry's referrers API alone as the fallback tag index
sha256-<hex>), out of one into a registry with that API as referrers alone. One image failing does not stop the others
(--fail-fast: it does) and its tags are not touched. The run ends with a table
on stdout (source, target, digest, copied, skipped or failed and why); the exit
code is non-zero when an image failed.`

const copyExample = `  # Copy one image to another tag, digest kept
  docker imgx copy docker.io/library/alpine:3.20 registry.example/base/alpine:3.20

  # Mirror a release's images under a prefix
  docker imgx copy registry.example/app:1.2.3 docker.io/library/redis:7.2 registry.local/mirror
  # (registry.local/mirror/app:1.2.3, registry.local/mirror/library/redis:7.2)

  # Every tag of a repository
  docker imgx copy --all-tags registry.example/app registry.local/mirror

  # Keep the source registry in the path, as skopeo sync --scoped does
  docker imgx copy --scoped -f images.txt registry.local/mirror

  # Air gap: a list of images into one bundle, then into a registry inside
  docker imgx copy -f images.txt archive://bundle.tar
  docker imgx copy archive://bundle.tar registry.internal/mirror

  # A docker save tar into a registry, its plain layers zstd-compressed (default: gzip)
  docker save -o app.tar app:1.2.3
  docker imgx copy --compression zstd archive://app.tar registry.local/mirror

  # Many images in one OCI layout, each under its name, and all of them out again
  docker imgx copy -f images.txt oci-layout://./mirror
  docker imgx copy oci-layout://./mirror registry.internal/mirror

  # The report as JSON too; stop at the first failure
  docker imgx copy --fail-fast --metadata-file report.json -f images.txt registry.local/mirror`
