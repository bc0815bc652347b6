// Package placement decides which instance of a stateful service owns a key
// (a room id), and fences owners with a lease in Redis.
//
// Placement is rendezvous (highest-random-weight) hashing over the live
// instances of the service: every broker computes the same owner from the
// same yellow view without talking to the others, and when an instance leaves
// only its own keys move. The lease makes ownership single-writer: an
// instance handles a key only while it holds the key's lease, and every lease
// acquisition takes a new, strictly larger epoch, which the owner passes to
// its stores so a stale owner (paused, partitioned) can never write again.
package placement

import (
	"hash/fnv"
	"sort"
)

// score is the rendezvous weight of instance id for key.
func score(key, id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(id))
	// fnv's low bits mix poorly for similar inputs; finish with a 64-bit
	// mixer (splitmix64's) so weights are uniform.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Owner returns the instance of ids that owns key: the one with the highest
// rendezvous weight. It returns "" when ids is empty.
func Owner(key string, ids []string) string {
	var best string
	var bestScore uint64
	for _, id := range ids {
		s := score(key, id)
		if best == "" || s > bestScore || (s == bestScore && id < best) {
			best, bestScore = id, s
		}
	}
	return best
}

// Rank returns ids ordered by their rendezvous weight for key, owner first:
// the order in which instances take the key over as owners leave.
func Rank(key string, ids []string) []string {
	out := append([]string(nil), ids...)
	sort.Slice(out, func(i, j int) bool {
		si, sj := score(key, out[i]), score(key, out[j])
		if si != sj {
			return si > sj
		}
		return out[i] < out[j]
	})
	return out
}
