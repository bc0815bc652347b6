package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// sampleEvery is how often a Sampler reads memory: often enough to catch
// the peak of a run of a few seconds, rarely enough that the brief
// stop-the-world of runtime.ReadMemStats costs nothing measurable.
const sampleEvery = 100 * time.Millisecond

// CPUTime returns the CPU time the process has used so far, user and
// system, from getrusage(RUSAGE_SELF).
func CPUTime() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// RSS returns the resident set size of the process (VmRSS in
// /proc/self/status), or 0 where that file does not exist.
func RSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest) // "12345", "kB"
		if len(f) == 0 {
			return 0
		}
		kb, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// hostCPU returns the busy and total CPU time of the whole machine, all
// CPUs summed, in clock ticks, from the first line of /proc/stat; ok is
// false where that file does not exist.
func hostCPU() (busy, total uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, false
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice,
	// already counted in user and nice].
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, true
}

// GoMem returns the Go heap and goroutine-stack memory in use
// (HeapInuse + StackInuse), without a GC.
func GoMem() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// MemInUse returns GoMem after two garbage collections: what live objects
// and stacks hold, the measure for memory per connection.
func MemInUse() uint64 {
	heap, stack := memSplit()
	return heap + stack
}

// memSplit returns HeapInuse and StackInuse after two garbage collections.
func memSplit() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse
}

// Usage is what the process spent over an interval.
type Usage struct {
	// Wall is the interval.
	Wall time.Duration
	// User and Sys are the CPU time used in it.
	User, Sys time.Duration
	// PeakRSS is the highest RSS sampled (every 100 ms, and at both ends).
	PeakRSS uint64
	// PeakGoMem is the highest Go heap + stack in use sampled.
	PeakGoMem uint64
	// EndRSS and EndGoMem are the values at the end.
	EndRSS, EndGoMem uint64
	// HostCPUPercent is how busy the whole machine was (/proc/stat), in
	// percent of one core: this process and every other. -1 if unknown.
	HostCPUPercent float64
}

// OthersCPUPercent returns the CPU the rest of the machine used meanwhile
// (HostCPUPercent - CPUPercent, at least 0), in percent of one core: more
// than a few percent means other work competed with the measurement.
// It returns -1 if HostCPUPercent is unknown.
func (u Usage) OthersCPUPercent() float64 {
	if u.HostCPUPercent < 0 {
		return -1
	}
	return max(0, u.HostCPUPercent-u.CPUPercent())
}

// CPUPercent returns (User+Sys)/Wall in percent of one core: a process
// keeping two cores busy shows 200.
func (u Usage) CPUPercent() float64 {
	if u.Wall <= 0 {
		return 0
	}
	return 100 * float64(u.User+u.Sys) / float64(u.Wall)
}

// Sampler measures Usage between StartSampler and Stop.
type Sampler struct {
	start      time.Time
	user, sys  time.Duration
	hostBusy   uint64
	hostTotal  uint64
	hostOK     bool
	stop, done chan struct{}
	once       sync.Once

	mu   sync.Mutex // guards peak values, written by the sampling goroutine
	peak Usage
	res  Usage
}

// StartSampler starts measuring.
func StartSampler() *Sampler {
	s := &Sampler{stop: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	s.start = time.Now()
	s.user, s.sys = CPUTime()
	s.hostBusy, s.hostTotal, s.hostOK = hostCPU()
	go s.loop()
	return s
}

func (s *Sampler) loop() {
	defer close(s.done)
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sample()
		}
	}
}

func (s *Sampler) sample() (rss, gomem uint64) {
	rss, gomem = RSS(), GoMem()
	s.mu.Lock()
	s.peak.PeakRSS = max(s.peak.PeakRSS, rss)
	s.peak.PeakGoMem = max(s.peak.PeakGoMem, gomem)
	s.mu.Unlock()
	return rss, gomem
}

// Stop ends the measurement and returns it; later calls return the same.
func (s *Sampler) Stop() Usage {
	s.once.Do(func() {
		user, sys := CPUTime()
		busy, total, ok := hostCPU()
		wall := time.Since(s.start)
		close(s.stop)
		<-s.done
		rss, gomem := s.sample()
		s.mu.Lock()
		s.res = Usage{
			Wall: wall, User: user - s.user, Sys: sys - s.sys,
			PeakRSS: s.peak.PeakRSS, PeakGoMem: s.peak.PeakGoMem,
			EndRSS: rss, EndGoMem: gomem,
			HostCPUPercent: -1,
		}
		if ok && s.hostOK && total > s.hostTotal {
			// busy/total is the busy share of all CPUs; times NumCPU
			// makes it percent of one core, like CPUPercent.
			s.res.HostCPUPercent = 100 * float64(runtime.NumCPU()) * float64(busy-s.hostBusy) / float64(total-s.hostTotal)
		}
		s.mu.Unlock()
	})
	return s.res
}
