package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout: log-linear buckets in the manner of HdrHistogram. Values
// (nanoseconds) below 2^(subBits+1) have a bucket each; above, every power
// of two is split into 2^subBits buckets, so a bucket is at most 1/128
// (0.8%) of its value wide. Values at or above 2^maxBits ns (about 69 s, far
// beyond any request deadline) are counted in the last bucket.
const (
	subBits   = 7
	subCount  = 1 << subBits       // buckets per power of two
	linearTop = 1 << (subBits + 1) // values below are exact
	maxBits   = 36
	numBucket = linearTop + (maxBits-subBits-1)*subCount
)

// Histogram is a latency histogram of fixed size (about 30 KiB) whatever
// the number of samples, with a relative error under 1%. Record is safe
// for concurrent use (atomic adds); the readers are meant for after the
// recording stopped.
type Histogram struct {
	counts [numBucket]atomic.Uint64
	max    atomic.Int64
	sum    atomic.Int64 // nanoseconds; overflows after ~290 years of latency
}

// bucketOf returns the bucket of v nanoseconds.
func bucketOf(v int64) int {
	if v < linearTop {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - (subBits + 1) // >= 1
	top := int(v >> shift)                         // in [subCount, 2*subCount)
	i := linearTop + (shift-1)*subCount + top - subCount
	return min(i, numBucket-1)
}

// bucketValue returns the middle of bucket i, in nanoseconds.
func bucketValue(i int) int64 {
	if i < linearTop {
		return int64(i)
	}
	shift := (i-linearTop)/subCount + 1
	top := int64((i-linearTop)%subCount + subCount)
	lo := top << shift
	return lo + (int64(1)<<shift)/2
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)].Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if n := o.counts[i].Load(); n > 0 {
			h.counts[i].Add(n)
		}
	}
	h.sum.Add(o.sum.Load())
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
}

// Count returns the number of samples.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Max returns the largest sample (exact).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean returns the mean of the samples (exact), 0 if there are none.
func (h *Histogram) Mean() time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / int64(n))
}

// Quantile returns the q-quantile (0 <= q <= 1) of the samples: the value
// of the bucket holding the ceil(q*count)-th smallest sample, never more
// than Max. It returns 0 if there are no samples.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(time.Duration(bucketValue(i)), h.Max())
		}
	}
	return h.Max()
}
