package registry

import "testing"

func TestHostMatcher(t *testing.T) {
	m, err := NewHostMatcher([]string{"reg.example:5000", "plain.example", "10.1.0.0/16", " https://tls.example/ "})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"reg.example:5000":   true,
		"reg.example:5001":   false,
		"plain.example":      true,
		"plain.example:8080": true,
		"10.1.2.3:5000":      true,
		"10.2.0.1":           false,
		"tls.example":        true,
		"other.example":      false,
	} {
		if got := m(host); got != want {
			t.Errorf("%s: got %v want %v", host, got, want)
		}
	}
	if _, err := NewHostMatcher([]string{"10.0.0.0/99"}); err == nil {
		t.Fatal("bad CIDR accepted")
	}
}
