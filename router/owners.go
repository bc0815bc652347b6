package router

import "sync"

// ownerCache remembers which instance owns a stateful key, learned from
// "moved" replies and from the sender of replies that bound the key. It is
// a hint: an entry is used only while its instance is live, and a wrong one
// costs one "moved".
type ownerCache struct {
	mu sync.Mutex // a leaf
	m  map[ownerKey]string
}

type ownerKey struct{ service, value string }

func newOwnerCache() *ownerCache { return &ownerCache{m: make(map[ownerKey]string)} }

func (c *ownerCache) get(service, value string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[ownerKey{service, value}]
}

func (c *ownerCache) put(service, value, owner string) {
	if value == "" || owner == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := ownerKey{service, value}
	if _, ok := c.m[k]; !ok && len(c.m) >= maxCachedOwners {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = owner
}

func (c *ownerCache) forget(service, value, owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := ownerKey{service, value}
	if c.m[k] == owner {
		delete(c.m, k)
	}
}

func (c *ownerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
