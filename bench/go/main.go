// The Go peer of bench/: one scenario per process, named by the first
// argument, printing the same BENCH-RESULT line as the Rust children.
// Built and run by `cargo run --release -p bench` when `go` is on PATH.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type outcome struct {
	Status  string             `json:"status"`
	Value   *float64           `json:"value"`
	Note    string             `json:"note,omitempty"`
	Extra   map[string]float64 `json:"extra"`
	Samples []float64          `json:"samples"`
}

func ok(v float64, note string) outcome {
	return outcome{Status: "ok", Value: &v, Note: note, Extra: map[string]float64{}, Samples: []float64{}}
}

func na(why string) outcome {
	return outcome{Status: "not-applicable", Note: why, Extra: map[string]float64{}, Samples: []float64{}}
}

type params struct{ quick bool }

func (p params) pick(quick, full int) int {
	if p.quick {
		return quick
	}
	return full
}

const contenders = 8

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench-go SCENARIO [--quick]")
		os.Exit(2)
	}
	if os.Args[1] == "http-server" {
		httpServer()
		return
	}
	p := params{quick: len(os.Args) > 2 && os.Args[2] == "--quick"}
	all := runtime.NumCPU()
	var o outcome
	switch os.Args[1] {
	case "yield2":
		o = ok(yields(2, p.pick(200_000, 2_000_000)), "GOMAXPROCS=1, runtime.Gosched")
	case "yield100":
		o = ok(yields(100, p.pick(200_000, 2_000_000)), "GOMAXPROCS=1, runtime.Gosched")
	case "spawn1":
		runtime.GOMAXPROCS(1)
		o = secondBurst(p.pick(20_000, 100_000), "GOMAXPROCS=1; join = WaitGroup + result slice")
	case "spawn-all":
		runtime.GOMAXPROCS(all)
		o = secondBurst(p.pick(20_000, 100_000), fmt.Sprintf("GOMAXPROCS=%d", all))
	case "pingpong1":
		runtime.GOMAXPROCS(1)
		o = ok(pingPong(p.pick(20_000, 200_000)), "chan of capacity 1, GOMAXPROCS=1")
	case "pingpong-cross":
		if all < 2 {
			o = na("one CPU only")
		} else {
			runtime.GOMAXPROCS(all)
			o = ok(pingPong(p.pick(20_000, 200_000)), "chan of capacity 1, GOMAXPROCS=2; placement not ours to choose")
		}
	case "mutex-uncontended":
		runtime.GOMAXPROCS(1)
		o = ok(mutexUncontended(p.pick(2_000_000, 20_000_000)), "sync.Mutex")
	case "mutex-contended":
		runtime.GOMAXPROCS(all)
		o = ok(mutexContended(p.pick(20_000, 200_000)), "sync.Mutex, 8 goroutines")
	case "sleeper":
		o = sleeper(p)
	case "prio-wake":
		o = na("no goroutine priorities")
	case "rss":
		o = rss(p.pick(10_000, 100_000))
	case "max-threads":
		o = maxThreads(p)
	case "floor":
		o = na("no bare-coroutine API; compare with yield2")
	case "fairness":
		o = fairness(p)
	case "thread-ring":
		if all < 2 {
			o = na("one CPU only")
		} else {
			runtime.GOMAXPROCS(2)
			o = ok(threadRing(p.pick(20_000, 1_000_000)), "chan of capacity 1, GOMAXPROCS=2")
		}
	case "fork-join":
		if all < 2 {
			o = na("one CPU only")
		} else {
			o = forkJoinOutcome(p)
		}
	case "chameneos":
		if all < 2 {
			o = na("one CPU only")
		} else {
			runtime.GOMAXPROCS(2)
			o = chameneos(p.pick(20_000, 200_000))
		}
	case "imbalance":
		if all < 2 {
			o = na("one CPU only")
		} else {
			o = imbalanceOutcome(p)
		}
	default:
		o = outcome{Status: "failed", Note: "unknown scenario " + os.Args[1], Extra: map[string]float64{}, Samples: []float64{}}
	}
	line, _ := json.Marshal(o)
	fmt.Println("BENCH-RESULT " + string(line))
	os.Exit(0)
}

func nsPer(start time.Time, n int) float64 {
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

func yields(threads, total int) float64 {
	runtime.GOMAXPROCS(1)
	per := total / threads
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < threads; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < per; k++ {
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	return nsPer(start, per*threads)
}

// secondBurst times the second of two bursts, as the Rust peers do
// (bench/src/common.rs, second_burst); the first is first_burst_ns.
func secondBurst(n int, note string) outcome {
	first := spawnJoin(n)
	o := ok(spawnJoin(n), note)
	o.Extra["first_burst_ns"] = first
	return o
}

func spawnJoin(n int) float64 {
	results := make([]int, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			results[i] = i
			wg.Done()
		}(i)
	}
	wg.Wait()
	sum := 0
	for _, v := range results {
		sum += v
	}
	if sum != n*(n-1)/2 {
		panic("wrong sum")
	}
	return nsPer(start, n)
}

func pingPong(trips int) float64 {
	toB, toA := make(chan int, 1), make(chan int, 1)
	go func() {
		for v := range toB {
			toA <- v + 1
		}
	}()
	start := time.Now()
	for i := 0; i < trips; i++ {
		toB <- i
		if <-toA != i+1 {
			panic("wrong reply")
		}
	}
	ns := nsPer(start, trips)
	close(toB)
	return ns
}

var sink uint64

func mutexUncontended(n int) float64 {
	var m sync.Mutex
	v := uint64(0)
	start := time.Now()
	for i := 0; i < n; i++ {
		m.Lock()
		v++
		m.Unlock()
	}
	ns := nsPer(start, n)
	sink = v
	return ns
}

// work is the same few dozen instructions as the Rust peers' critical section.
func work(v *uint64) {
	for i := 0; i < 8; i++ {
		*v = *v*6364136223846793005 + 1
	}
}

func mutexContended(per int) float64 {
	var m sync.Mutex
	v := uint64(0)
	var wg sync.WaitGroup
	start := time.Now()
	for t := 0; t < contenders; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				m.Lock()
				work(&v)
				m.Unlock()
			}
		}()
	}
	wg.Wait()
	sink = v
	return float64(contenders*per) / time.Since(start).Seconds() / 1e6
}

func sleeper(p params) outcome {
	runtime.GOMAXPROCS(1)
	n := p.pick(200, 1500)
	deadline := time.Duration(p.pick(1, 3)) * time.Second
	var stop atomic.Bool
	var counts [2]atomic.Uint64
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			local := uint64(0)
			for !stop.Load() {
				local++
				if local%1024 == 0 {
					counts[i].Add(1024)
				}
			}
		}(i)
	}
	// The deadline is kept by an OS-level timer goroutine: Go's own
	// preemption lets it run even among the hogs.
	timer := time.AfterFunc(deadline, func() { stop.Store(true) })
	late := make([]float64, 0, n)
	for len(late) < n && !stop.Load() {
		t := time.Now()
		time.Sleep(time.Millisecond)
		l := time.Since(t) - time.Millisecond
		late = append(late, float64(l.Nanoseconds())/1e3)
	}
	stop.Store(true)
	timer.Stop()
	wg.Wait()
	sort.Float64s(late)
	a, b := float64(counts[0].Load()), float64(counts[1].Load())
	fair := 0.0
	if a > 0 && b > 0 {
		fair = min(a, b) / max(a, b)
	}
	if len(late) == 0 || late[len(late)-1] > float64(deadline.Microseconds())/2 {
		o := outcome{Status: "starved", Note: fmt.Sprintf("woke %d times in %v (asked %d)", len(late), deadline, n),
			Extra: map[string]float64{"wakeups": float64(len(late)), "fairness": fair}, Samples: late}
		return o
	}
	k := len(late)
	o := ok(late[k/2], "GOMAXPROCS=1; Go preempts a running goroutine after ~10 ms")
	o.Extra["p99_us"] = late[k*99/100]
	o.Extra["max_us"] = late[k-1]
	o.Extra["wakeups"] = float64(k)
	o.Extra["fairness"] = fair
	o.Samples = late
	return o
}

func min(a, b float64) float64 {
	if a < b {
		return a
	}
	return b
}

func max(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}

func rssBytes() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.Atoi(f[1])
	return float64(pages * os.Getpagesize())
}

// parker holds goroutines blocked on a channel that is never closed.
type parker struct {
	release chan struct{}
	parked  atomic.Int64
	n       int
}

func (p *parker) grow(total int) {
	for p.n < total {
		go func() {
			p.parked.Add(1)
			<-p.release
		}()
		p.n++
	}
	for int(p.parked.Load()) < total {
		time.Sleep(2 * time.Millisecond)
	}
}

func rss(n int) outcome {
	runtime.GOMAXPROCS(1)
	p := &parker{release: make(chan struct{})}
	p.grow(1)
	runtime.GC()
	before := rssBytes()
	p.grow(n + 1)
	after := rssBytes()
	o := ok((after-before)/float64(n), "goroutines blocked on a channel; growable stacks, 2 KiB at the least")
	o.Extra["threads"] = float64(n)
	return o
}

func memAvailable() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 1 << 62
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemAvailable:") {
			f := strings.Fields(l)
			kib, _ := strconv.Atoi(f[1])
			return kib * 1024
		}
	}
	return 1 << 62
}

func maxThreads(pr params) outcome {
	runtime.GOMAXPROCS(1)
	steps := []int{10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000}
	if pr.quick {
		steps = []int{10_000, 20_000}
	}
	p := &parker{release: make(chan struct{})}
	why := ""
	for _, s := range steps {
		if memAvailable() < 4<<30 {
			why = "stopped: under 4 GiB of memory left"
			break
		}
		p.grow(s)
	}
	if why == "" {
		why = fmt.Sprintf("reached the cap of %d", p.n)
	}
	o := ok(float64(p.n), why)
	o.Extra["rss_mib"] = rssBytes() / (1 << 20)
	return o
}

// The fairness scenario (see bench/src/fairness.rs, whose windows, goal
// and figures this follows): a counting sibling beside a hog of each kind
// on one P, in interleaved 50 ms windows.

var hogKinds = []string{"spin", "write", "getppid", "malloc", "std"}

var sinkBytes []byte
var sinkStrings []string

// hog runs one kind of hog until w.stop, or until it has made budget
// calls, or (if the deadline is not zero) until the deadline. It returns
// its calls.
//
// The budget bounds a window that Go cannot preempt: syscall.Getppid is a
// raw system call, so a goroutine looping on it is neither preempted
// asynchronously (the signal lands in the system call's assembly, not at a
// safe point) nor at a function prologue, and the main goroutine, which
// closes the window, waits for the same P as the sibling does: windows
// ran far past their length without it. A hog that runs out of budget
// closes the window itself: what the sibling counted until then is its
// share. Counting calls adds no preemption point, which reading the clock
// in the loop would.
func hog(kind string, w *fairWindow, budget uint64, deadline time.Time, devnull int) uint64 {
	buf := make([]byte, 64)
	n := uint64(0)
	for !w.stop.Load() && n < budget {
		switch kind {
		case "spin":
			for i := 0; i < 64; i++ {
				sink++
			}
		case "write":
			syscall.Write(devnull, buf)
		case "getppid":
			sink += uint64(syscall.Getppid())
		case "malloc":
			sinkBytes = make([]byte, 384)
		case "std":
			v := make([]string, 0, 16)
			for i := uint64(0); i < 16; i++ {
				v = append(v, strconv.FormatUint(i*7919+n, 10))
			}
			sinkStrings = v
		}
		n++
		if !deadline.IsZero() && n%64 == 0 && time.Now().After(deadline) {
			break
		}
	}
	if n >= budget && !w.stop.Swap(true) {
		w.closedBy.Store(int64(cpuNow() - w.cpu0))
		w.closedAt.Store(w.count.Load())
	}
	return n
}

// fairWindow is what the goroutines of one window share.
type fairWindow struct {
	origin   time.Time
	cpu0     time.Duration // the process's CPU time at the opening
	stop     atomic.Bool
	count    atomic.Uint64 // the sibling's iterations so far
	closedBy atomic.Int64  // CPU time used when a hog out of budget closed the window
	closedAt atomic.Uint64 // the sibling's count then
}

type trial struct {
	iterations uint64
	cpu        time.Duration // the process's CPU time over the window
	stall      time.Duration
}

// cpuNow is the CPU time of the whole process so far (user and system),
// as the Rust peers measure it: shares are per CPU-second.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fairTrial runs one window: the sibling alone (kind "") or beside a hog,
// started first when hogFirst.
func fairTrial(kind string, hogFirst bool, window time.Duration, budget uint64, devnull int) trial {
	w := &fairWindow{cpu0: cpuNow(), origin: time.Now()}
	var wg sync.WaitGroup
	var t trial
	sibling := func() {
		defer wg.Done()
		n, last := uint64(0), w.origin
		for {
			for i := 0; i < 256; i++ {
				n++
			}
			w.count.Store(n)
			now := time.Now()
			if d := now.Sub(last); d > t.stall {
				t.stall = d
			}
			last = now
			if w.stop.Load() {
				break
			}
		}
		t.iterations = n
	}
	wg.Add(1)
	if kind == "" {
		go sibling()
	} else {
		wg.Add(1)
		h := func() {
			defer wg.Done()
			hog(kind, w, budget, time.Time{}, devnull)
		}
		if hogFirst {
			go h()
			go sibling()
		} else {
			go sibling()
			go h()
		}
	}
	// The main goroutine shares the one P: Go's own preemption wakes it.
	time.Sleep(window - time.Since(w.origin))
	if !w.stop.Swap(true) {
		t.cpu = cpuNow() - w.cpu0
	}
	wg.Wait()
	if by := w.closedBy.Load(); by != 0 {
		t.cpu, t.iterations = time.Duration(by), w.closedAt.Load()
	}
	return t
}

func fairness(p params) outcome {
	runtime.GOMAXPROCS(1)
	devnull, err := syscall.Open("/dev/null", syscall.O_WRONLY, 0)
	if err != nil {
		return outcome{Status: "failed", Note: "open /dev/null: " + err.Error(), Extra: map[string]float64{}, Samples: []float64{}}
	}
	defer syscall.Close(devnull)
	window := 50 * time.Millisecond
	rounds := p.pick(6, 20)
	kinds := append([]string{""}, hogKinds...)
	// Each hog's budget: twice the calls it makes alone in a window.
	budgets := make([]uint64, len(kinds))
	budgets[0] = ^uint64(0)
	for i, k := range hogKinds {
		calls := hog(k, &fairWindow{}, ^uint64(0), time.Now().Add(20*time.Millisecond), devnull)
		budgets[i+1] = 2 * calls * uint64(window/(20*time.Millisecond))
	}
	sums := make([]trial, len(kinds))
	for r := 0; r < rounds; r++ {
		for i, k := range kinds {
			t := fairTrial(k, r%2 == 0, window, budgets[i], devnull)
			sums[i].iterations += t.iterations
			sums[i].cpu += t.cpu
			if t.stall > sums[i].stall {
				sums[i].stall = t.stall
			}
		}
	}
	rate := func(t trial) float64 { return float64(t.iterations) / t.cpu.Seconds() }
	if sums[0].iterations == 0 {
		return outcome{Status: "failed", Note: "the sibling did not run alone", Extra: map[string]float64{}, Samples: []float64{}}
	}
	lowest := 1e308
	missed := []string{}
	extra := map[string]float64{}
	for i, k := range hogKinds {
		t := sums[i+1]
		share := 100 * rate(t) / rate(sums[0])
		stall := t.stall.Seconds() * 1e3
		lowest = min(lowest, share)
		if share < 40 || stall > 5 {
			missed = append(missed, fmt.Sprintf("%s (%.1f %%, %.1f ms)", k, share, stall))
		}
		extra["share_"+k+"_pct"] = share
		extra["stall_"+k+"_ms"] = stall
	}
	verdict := "met"
	if len(missed) > 0 {
		verdict = "missed against " + strings.Join(missed, ", ")
	}
	o := ok(lowest, fmt.Sprintf("GOMAXPROCS=1, Go's ~10 ms async preemption; goal (sibling >= 40 %% of the worker, "+
		"no stall > 5 ms, against every hog): %s; %d windows of 50 ms per kind, interleaved; a hog stops after "+
		"twice the calls it makes alone in a window", verdict, rounds))
	o.Extra = extra
	return o
}

// ringThreads is scenario::RING_THREADS on the Rust side.
const ringThreads = 503

// threadRing passes a token hops times around ringThreads goroutines, each
// receiving on its own channel and sending to the next one's; ns per hop.
// The goroutine that takes the last hop closes its next channel, which ends
// the next goroutine's loop, and so on around the ring.
func threadRing(hops int) float64 {
	chans := make([]chan int, ringThreads)
	for i := range chans {
		chans[i] = make(chan int, 1)
	}
	done := make(chan time.Time, 1)
	var wg sync.WaitGroup
	for i := range chans {
		wg.Add(1)
		go func(in, next chan int) {
			defer wg.Done()
			defer close(next)
			for v := range in {
				if v == 0 {
					done <- time.Now()
					return
				}
				next <- v - 1
			}
		}(chans[i], chans[(i+1)%ringThreads])
	}
	start := time.Now()
	chans[0] <- hops
	end := <-done
	wg.Wait()
	return float64(end.Sub(start).Nanoseconds()) / float64(hops)
}

// leafIters is scenario::LEAF_ITERS on the Rust side.
const leafIters = 8_000

// leaf is common::leaf on the Rust side: the same multiply-xorshift chain.
// Its result is summed up the tree and checked, so it cannot be dropped.
//
//go:noinline
func leaf(seed uint64) uint64 {
	x := seed
	for i := 0; i < leafIters; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		x ^= x >> 29
	}
	return x
}

// forkJoin is a node of the tree: a leaf does the fixed work, any other
// node starts a goroutine per child and waits for both.
func forkJoin(depth int, index uint64) uint64 {
	if depth == 0 {
		return leaf(index)
	}
	var a, b uint64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { a = forkJoin(depth-1, 2*index); wg.Done() }()
	go func() { b = forkJoin(depth-1, 2*index+1); wg.Done() }()
	wg.Wait()
	return a + b
}

func timedTree(procs, depth int) (uint64, time.Duration) {
	runtime.GOMAXPROCS(procs)
	start := time.Now()
	sum := forkJoin(depth, 0)
	return sum, time.Since(start)
}

func medianMs(d []time.Duration) float64 {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return float64(d[len(d)/2].Nanoseconds()) / 1e6
}

// forkJoinOutcome times the tree with GOMAXPROCS=1 and =2 in turn (as
// common::fork_join_times does) and reports the speedup.
func forkJoinOutcome(p params) outcome {
	depth := p.pick(6, 12)
	return speedupOutcome(p.pick(1, 3), func(procs int) (uint64, time.Duration) { return timedTree(procs, depth) },
		"a goroutine per child, WaitGroup; GOMAXPROCS=1 against 2")
}

// speedupOutcome runs `timed` with GOMAXPROCS=1 and =2 in turn, `rounds`
// times each, and reports the speedup of the medians.
func speedupOutcome(rounds int, timed func(procs int) (uint64, time.Duration), note string) outcome {
	var t1, t2 []time.Duration
	for r := 0; r < rounds; r++ {
		s1, d1 := timed(1)
		s2, d2 := timed(2)
		if s1 != s2 {
			panic("the two worker counts computed different results")
		}
		t1, t2 = append(t1, d1), append(t2, d2)
	}
	w1, w2 := medianMs(t1), medianMs(t2)
	o := ok(w1/w2, note)
	o.Extra["w1_ms"] = w1
	o.Extra["w2_ms"] = w2
	return o
}

// imbalanceWork is the work of imbalance goroutine i: i%8+1 units of unit
// leaves (common::imbalance_work).
func imbalanceWork(i, unit uint64) uint64 {
	var acc uint64
	for k := uint64(0); k < (i%8+1)*unit; k++ {
		acc += leaf(i*1000 + k)
	}
	return acc
}

func timedImbalance(procs int, unit uint64) (uint64, time.Duration) {
	runtime.GOMAXPROCS(procs)
	start := time.Now()
	sums := make([]uint64, imbalanceThreads)
	var wg sync.WaitGroup
	wg.Add(imbalanceThreads)
	for i := 0; i < imbalanceThreads; i++ {
		go func(i int) { sums[i] = imbalanceWork(uint64(i), unit); wg.Done() }(i)
	}
	wg.Wait()
	var sum uint64
	for _, s := range sums {
		sum += s
	}
	return sum, time.Since(start)
}

const imbalanceThreads = 64

// imbalanceOutcome: 64 uneven goroutines started in a loop, GOMAXPROCS=1
// against 2, as forkJoinOutcome.
func imbalanceOutcome(p params) outcome {
	unit := uint64(p.pick(2, 20))
	return speedupOutcome(p.pick(1, 3), func(procs int) (uint64, time.Duration) { return timedImbalance(procs, unit) },
		"a goroutine each, started in a loop; GOMAXPROCS=1 against 2")
}

const creatures = 10

type visit struct {
	id     int
	colour int
	reply  chan *visit
}

// chameneos: 10 creatures meet through a broker goroutine (this one);
// see ours::chameneos. ns per meeting.
func chameneos(meetings int) outcome {
	toBroker := make(chan visit)
	counts := make(chan int, creatures)
	start := time.Now()
	for id := 0; id < creatures; id++ {
		go func(id int) {
			colour, n := id%3, 0
			reply := make(chan *visit, 1)
			for {
				toBroker <- visit{id, colour, reply}
				other := <-reply
				if other == nil {
					counts <- n
					return
				}
				if colour != other.colour {
					colour = 3 - colour - other.colour
				}
				n++
			}
		}(id)
	}
	for m := 0; m < meetings; m++ {
		a := <-toBroker
		b := <-toBroker
		a.reply <- &visit{b.id, b.colour, nil}
		b.reply <- &visit{a.id, a.colour, nil}
	}
	for i := 0; i < creatures; i++ {
		v := <-toBroker
		v.reply <- nil
	}
	counted := 0
	for i := 0; i < creatures; i++ {
		counted += <-counts
	}
	if counted != 2*meetings {
		return outcome{Status: "failed", Note: fmt.Sprintf("%d creature-meetings for %d meetings", counted, meetings), Extra: map[string]float64{}, Samples: []float64{}}
	}
	return ok(float64(time.Since(start).Nanoseconds())/float64(meetings), "unbuffered chan to the broker, capacity-1 chan back; GOMAXPROCS=2")
}
