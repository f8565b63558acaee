// Command ceiling is the yardstick of the benchmark: the least work a Go HTTP
// server can do per request, a fixed 50-byte JSON answer from net/http.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
)

// body is 50 bytes, the size of the cached value the GET scenarios read.
var body = []byte(`{"ok":true,"value":"ceiling-ceiling-ceiling-ceil"}`)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ceiling: %v\n", err)
		os.Exit(1)
	}
	// The runner reads the address from the first line.
	fmt.Println(ln.Addr().String())
	length := strconv.Itoa(len(body))
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", length)
		_, _ = w.Write(body)
	}))
	fmt.Fprintf(os.Stderr, "ceiling: %v\n", err)
	os.Exit(1)
}
