// Package oci holds the OCI rules the core applies, each written once:
// media types, attestation manifests, platform matching, the size limits of
// what is read whole and how it is read, the one walk of manifest graphs
// and the limits of what a command reads of them, the image-config check,
// digest verification while streaming, and the default concurrency.
package oci
