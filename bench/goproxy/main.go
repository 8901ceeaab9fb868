// Command goproxy is the smallest TCP proxy that Go's standard library
// allows: accept, dial the upstream, io.Copy both ways. It exists only as a
// baseline for bench/compare.sh: on Linux, io.Copy between two *net.TCPConn
// goes through (*TCPConn).ReadFrom, which moves the bytes with splice(2)
// through pipes taken from Go's own pool (internal/poll).
//
// With -echo it is instead an echo server (io.Copy of a connection onto
// itself), an upstream whose listen backlog is net.core.somaxconn.
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"sync"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to accept clients on")
	upstream := flag.String("upstream", "", "address to forward each client to")
	echo := flag.Bool("echo", false, "be an echo server instead of a proxy (an upstream for benchmarks)")
	flag.Parse()
	if *upstream == "" && !*echo {
		log.Fatal("goproxy: -upstream or -echo is required")
	}
	ln, err := net.Listen("tcp", *listen) // backlog: net.core.somaxconn
	if err != nil {
		log.Fatalf("goproxy: listen %s: %v", *listen, err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			// EMFILE and the like: keep serving; the benchmark watches for it.
			log.Printf("goproxy: accept: %v", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if *echo {
			go func(c net.Conn) {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}(c)
			continue
		}
		go serve(c.(*net.TCPConn), *upstream)
	}
}

// serve forwards one client until both directions have ended.
func serve(client *net.TCPConn, upstream string) {
	defer client.Close()
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		log.Printf("goproxy: dial %s: %v", upstream, err)
		return
	}
	up := u.(*net.TCPConn)
	defer up.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	// Each direction: copy until EOF, then pass the half-close on.
	pump := func(dst, src *net.TCPConn) {
		defer wg.Done()
		if _, err := io.Copy(dst, src); err != nil { // *TCPConn.ReadFrom: splice(2) on Linux
			// A reset on one side ends both directions.
			client.Close()
			up.Close()
			return
		}
		_ = dst.CloseWrite()
	}
	go pump(up, client)
	go pump(client, up)
	wg.Wait()
}
