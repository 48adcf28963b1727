//go:build e2e

package e2e

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// redisCounter is a TCP proxy in front of one redis-server that counts what
// clients send: commands (RESP arrays; a command a Lua script runs inside
// Redis is not one, unlike in INFO commandstats) and round trips (a client
// write followed by waiting: the commands of one pipeline are one).
type redisCounter struct {
	ln         net.Listener
	target     string
	commands   atomic.Int64
	roundTrips atomic.Int64
	wg         sync.WaitGroup
}

// startRedisCounter listens on a free loopback port and forwards every
// connection to target; it stops on t.Cleanup.
func startRedisCounter(t *testing.T, target string) *redisCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &redisCounter{ln: ln, target: target}
	var mu sync.Mutex
	var conns []net.Conn
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, s); c.Close() }()
			go func() { defer p.wg.Done(); p.pump(c, s); s.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// addr is the proxy's host:port.
func (p *redisCounter) addr() string { return p.ln.Addr().String() }

// pump copies client commands to the server one by one, counting them, and
// counts a round trip whenever the client has nothing more buffered (its
// write is complete and it now waits for the answers).
func (p *redisCounter) pump(c, s net.Conn) {
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(s, 64<<10)
	for {
		if err := copyCommand(r, w); err != nil {
			return
		}
		p.commands.Add(1)
		if r.Buffered() == 0 {
			p.roundTrips.Add(1)
			if w.Flush() != nil {
				return
			}
		}
	}
}

// copyCommand copies one RESP command (an array of bulk strings, or an
// inline command line) from r to w.
func copyCommand(r *bufio.Reader, w *bufio.Writer) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return err
	}
	if _, err := w.Write(line); err != nil {
		return err
	}
	if len(line) == 0 || line[0] != '*' {
		return nil // inline command
	}
	n, err := strconv.Atoi(string(trimCRLF(line[1:])))
	if err != nil {
		return errors.New("bad array header")
	}
	for range n {
		hdr, err := r.ReadBytes('\n')
		if err != nil {
			return err
		}
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		if len(hdr) == 0 || hdr[0] != '$' {
			return errors.New("bad bulk header")
		}
		size, err := strconv.Atoi(string(trimCRLF(hdr[1:])))
		if err != nil {
			return errors.New("bad bulk length")
		}
		if _, err := io.CopyN(w, r, int64(size)+2); err != nil {
			return err
		}
	}
	return nil
}

func trimCRLF(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
