package main

// The Go peer of `bench http`: net/http serving the same "hello" as the
// Rust servers, with HOGS spinning goroutines beside it. GOMAXPROCS comes
// from the environment.

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
)

var hogSink uint64

func httpServer() {
	hogs := 0
	if len(os.Args) > 2 {
		hogs, _ = strconv.Atoi(os.Args[2])
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := 0; i < hogs; i++ {
		go func() {
			x := uint64(0)
			for {
				x++
				if x == 0 {
					hogSink = x
				}
			}
		}()
	}
	fmt.Printf("PORT %d\n", ln.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	body := []byte("Hello, world!")
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}))
}
