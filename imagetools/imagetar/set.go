package imagetar

import (
	"errors"
	"sync"
)

// Set holds the tars a place has opened, each opened once and kept open
// until Close (which removes their spools). The zero Set is ready.
type Set struct {
	mu   sync.Mutex
	open map[string]*Archive
}

// Get returns the tar kept under key, else the first kept tar reuse accepts
// (when reuse is set), else opens one with open and keeps it under key. The
// lock is held throughout, so that a tar is opened once.
func (s *Set) Get(key string, reuse func(*Archive) bool, open func() (*Archive, error)) (*Archive, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.open[key]; ok {
		return a, nil
	}
	if reuse != nil {
		for _, a := range s.open {
			if reuse(a) {
				return a, nil
			}
		}
	}
	a, err := open()
	if err != nil {
		return nil, err
	}
	if s.open == nil {
		s.open = map[string]*Archive{}
	}
	s.open[key] = a
	return a, nil
}

// Close closes every tar kept.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for k, a := range s.open {
		errs = append(errs, a.Close())
		delete(s.open, k)
	}
	return errors.Join(errs...)
}
