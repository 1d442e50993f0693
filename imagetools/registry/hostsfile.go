package registry

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/pelletier/go-toml/v2"
	tomlu "github.com/pelletier/go-toml/v2/unstable"
)

// A containerd hosts.toml is read here rather than with containerd's
// config.ConfigureHosts: that one logs a malformed file and carries on
// without it, turns TLS verification off for every loopback server, and
// knows nothing of --insecure-registry. The file's format and meaning are
// containerd's (docs/hosts.md in containerd).

// hostEntry is one host a registry is reached through: a [host."URL"] of a
// hosts.toml (a mirror) or the registry's server.
type hostEntry struct {
	scheme, host, path string
	caps               docker.HostCapabilities
	caFiles            []string
	clientPairs        [][2]string
	skipVerify         *bool
	header             http.Header
	dialTimeout        time.Duration
	// certsDir, when set, is a Docker certs.d folder whose *.crt, *.cert and
	// *.key files configure TLS (a host without a hosts.toml).
	certsDir string
	// file is the hosts.toml the entry was read from; "" when none.
	file string
	// implicit marks the server of a registry that no file names: it is
	// reached as a registry without hosts.toml is (HTTPS, and plain HTTP
	// for loopback).
	implicit bool
}

// allCapabilities is what a host may do when its configuration says nothing.
const allCapabilities = docker.HostCapabilityPull | docker.HostCapabilityResolve | docker.HostCapabilityPush | docker.HostCapabilityReferrers

// hostFields are the settings of a host table, and of the file's top level
// (the server).
type hostFields struct {
	Capabilities []string       `toml:"capabilities"`
	CA           any            `toml:"ca"`
	Client       any            `toml:"client"`
	SkipVerify   *bool          `toml:"skip_verify"`
	Header       map[string]any `toml:"header"`
	OverridePath bool           `toml:"override_path"`
	DialTimeout  string         `toml:"dial_timeout"`
}

// readHostsFile reads a containerd hosts.toml: its [host."URL"] tables in
// file order, then the server (host empty when the file names none). It
// returns nil for a file that sets nothing (empty, or comments only): such
// a file changes nothing.
func readHostsFile(file string) ([]hostEntry, error) {
	b, err := readConfigFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	var keys map[string]any
	if err := toml.Unmarshal(b, &keys); err != nil {
		return nil, tomlError(file, err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	var cfg struct {
		hostFields
		Server string                `toml:"server"`
		Host   map[string]hostFields `toml:"host"`
	}
	if err := toml.Unmarshal(b, &cfg); err != nil {
		return nil, tomlError(file, err)
	}
	dir := filepath.Dir(file)
	var out []hostEntry
	for _, name := range hostOrder(b) {
		e, err := parseHostFields(name, dir, cfg.Host[name])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: [host.%q]: %w", file, lineOf(b, name), name, err)
		}
		e.file = file
		out = append(out, e)
	}
	server, err := parseHostFields(cfg.Server, dir, cfg.hostFields)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: %w", file, lineOf(b, cfg.Server), err)
	}
	server.file = file
	return append(out, server), nil
}

// tomlError names the file and line of a syntax or type error, and says
// what to do.
func tomlError(file string, err error) error {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return fmt.Errorf("%s:%d: %s (fix or remove the file)", file, row, de.Error())
	}
	return fmt.Errorf("%s: %w (fix or remove the file)", file, err)
}

// lineOf is the line of the first mention of s in b, for errors about a
// value (1 when s is empty or not found).
func lineOf(b []byte, s string) int {
	i := bytes.Index(b, []byte(s))
	if s == "" || i < 0 {
		return 1
	}
	return bytes.Count(b[:i], []byte("\n")) + 1
}

// hostOrder lists the [host."URL"] tables in the order they are written
// (a TOML table is unordered once decoded), as containerd does.
func hostOrder(b []byte) []string {
	var p tomlu.Parser
	p.Reset(b)
	var order []string
	seen := map[string]bool{}
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != tomlu.Table {
			continue
		}
		var parts []string
		for it := e.Key(); it.Next(); {
			parts = append(parts, string(it.Node().Data))
		}
		if len(parts) < 2 || parts[0] != "host" || seen[parts[1]] {
			continue
		}
		seen[parts[1]] = true
		order = append(order, parts[1])
	}
	return order
}

// parseHostFields turns a host table (or the top level, for the server)
// into an entry. Relative file names are read from dir.
func parseHostFields(server, dir string, f hostFields) (hostEntry, error) {
	var e hostEntry
	if server != "" {
		if err := e.setURL(server, f.OverridePath); err != nil {
			return hostEntry{}, err
		}
	}
	e.skipVerify = f.SkipVerify
	e.caps = allCapabilities
	if len(f.Capabilities) > 0 {
		e.caps = 0
		for _, c := range f.Capabilities {
			capability, ok := map[string]docker.HostCapabilities{"pull": docker.HostCapabilityPull, "resolve": docker.HostCapabilityResolve,
				"push": docker.HostCapabilityPush, "referrers": docker.HostCapabilityReferrers}[strings.ToLower(c)]
			if !ok {
				return hostEntry{}, fmt.Errorf("unknown capability %q (want pull, resolve, push or referrers)", c)
			}
			e.caps |= capability
		}
	}
	var err error
	if e.caFiles, err = fileList("ca", f.CA, dir); err != nil {
		return hostEntry{}, err
	}
	if e.clientPairs, err = clientPairs(f.Client, dir); err != nil {
		return hostEntry{}, err
	}
	if e.header, err = headers(f.Header); err != nil {
		return hostEntry{}, err
	}
	if f.DialTimeout != "" {
		if e.dialTimeout, err = time.ParseDuration(f.DialTimeout); err != nil {
			return hostEntry{}, fmt.Errorf("dial_timeout %q: want a duration such as 5s", f.DialTimeout)
		}
	}
	return e, nil
}

// setURL reads a host's URL: scheme (https when none), host, and API path
// (/v2 appended unless override_path).
func (e *hostEntry) setURL(server string, overridePath bool) error {
	if !strings.HasPrefix(server, "http://") && !strings.HasPrefix(server, "https://") {
		server = "https://" + server
	}
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a host URL (e.g. https://mirror.example.com)", server)
	}
	e.scheme, e.host, e.path = u.Scheme, u.Host, "/v2"
	if u.Path != "" {
		e.path = path.Clean(u.Path)
		if !strings.HasSuffix(e.path, "/v2") && !overridePath {
			e.path += "/v2"
		}
	} else if overridePath {
		e.path = ""
	}
	return nil
}

// fileList reads a string or a list of strings naming files.
func fileList(key string, v any, dir string) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{absPath(v, dir)}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, s := range v {
			str, ok := s.(string)
			if !ok {
				return nil, fmt.Errorf("%s: %v is not a file name", key, s)
			}
			out = append(out, absPath(str, dir))
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: want a file name or a list of them, not %v", key, v)
}

// clientPairs reads "client": a file holding certificate and key, a list of
// such files, or a list of [certificate, key] pairs.
func clientPairs(v any, dir string) ([][2]string, error) {
	list, ok := v.([]any)
	if !ok {
		files, err := fileList("client", v, dir)
		if err != nil || files == nil {
			return nil, err
		}
		return [][2]string{{files[0], ""}}, nil
	}
	var out [][2]string
	for _, item := range list {
		files, err := fileList("client", item, dir)
		if err != nil {
			return nil, err
		}
		switch len(files) {
		case 1:
			out = append(out, [2]string{files[0], ""})
		case 2:
			out = append(out, [2]string{files[0], files[1]})
		default:
			return nil, fmt.Errorf("client: want [certificate, key], not %v", item)
		}
	}
	return out, nil
}

// headers reads a [header] table: each value a string or a list of strings.
func headers(m map[string]any) (http.Header, error) {
	if m == nil {
		return nil, nil
	}
	h := http.Header{}
	for k, v := range m {
		switch v := v.(type) {
		case string:
			h[k] = []string{v}
		case []any:
			for _, s := range v {
				str, ok := s.(string)
				if !ok {
					return nil, fmt.Errorf("header %q: %v is not a string", k, s)
				}
				h[k] = append(h[k], str)
			}
		default:
			return nil, fmt.Errorf("header %q: want a string or a list of strings", k)
		}
	}
	return h, nil
}

func absPath(p, dir string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}
