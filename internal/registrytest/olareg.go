package registrytest

import (
	"net/http"
	"path"
	"regexp"
	"strings"
	"sync"

	"github.com/olareg/olareg"
	"github.com/olareg/olareg/config"
)

// newOlareg returns an olareg registry storing in memory (its folder store
// races under -race: a repository's existence is read unlocked), with the
// referrers API on, pushes and deletes allowed (as the
// distribution registries here allow them). Its garbage collection is off,
// so an untagged manifest stays, as in distribution.
func newOlareg() *olareg.Server {
	enabled := true
	return olareg.New(config.Config{
		Storage: config.ConfigStorage{
			StoreType: config.StoreMem,
			GC:        config.ConfigGC{Frequency: -1},
		},
		API: config.ConfigAPI{DeleteEnabled: &enabled},
	})
}

// oneManifestWriteAtATime passes requests to next, but a manifest put or
// delete (PUT or DELETE of /v2/<name>/manifests/<reference>, any
// repository) only while no other is in next; every other request, reads
// included, goes through at once. olareg v0.1.2 adds a referrer to its
// subject's list by reading the list, adding to it and writing it back,
// with no lock between the read and the write, so two referrers of one
// subject put at once could leave a list holding only one of them. A real
// registry keeps both, and clients rightly put referrers in parallel.
func oneManifestWriteAtATime(next http.Handler) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPut || req.Method == http.MethodDelete {
			if route, _, ok := olaregRoute(req.URL.Path); ok && route == "manifests" {
				mu.Lock()
				defer mu.Unlock()
			}
		}
		next.ServeHTTP(w, req)
	})
}

// olaregRepoPath is olareg's rule for a repository name (its rePath).
var olaregRepoPath = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)

// olaregRoute tells which of olareg's repository routes serves urlPath, and
// the repository it names, reading the path as olareg's ServeHTTP does
// (cleaned, then /v2/<name>/ and one of manifests/*, blobs/*, referrers/*,
// tags/list, blobs/uploads/*; the element before the last tells them
// apart). route is "manifests", "blobs", "referrers", "tags" or "uploads".
// ok is false for every other path, the base /v2/ and the catalog included,
// and for a name olareg does not accept.
func olaregRoute(urlPath string) (route, name string, ok bool) {
	el := strings.Split(strings.Trim(path.Clean("/"+urlPath), "/"), "/")
	if len(el) < 4 || el[0] != "v2" {
		return "", "", false
	}
	route, nameEnd := el[len(el)-2], len(el)-2
	switch {
	case route == "manifests" || route == "blobs" || route == "referrers":
	case route == "tags" && el[len(el)-1] == "list":
	case route == "uploads" && len(el) >= 5 && el[len(el)-3] == "blobs":
		nameEnd--
	default:
		return "", "", false
	}
	name = strings.Join(el[1:nameEnd], "/")
	if !olaregRepoPath.MatchString(name) {
		return "", "", false
	}
	return route, name, true
}
