// Package redistest starts real redis-server processes on free loopback ports
// for tests that need what miniredis does not have.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RequireEnv makes a missing redis-server a failure instead of a skip; CI sets it.
const RequireEnv = "REDIS_GATEWAY_REQUIRE_SERVER"

// tb is what the fixtures need from a test. A *testing.T serves, or a Shared
// for fixtures that outlive tests.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Server is one redis-server process owned by a test.
type Server struct {
	t    tb
	bin  string
	args []string
	Port int
	TLS  *TLS // nil: plain text
	cmd  *exec.Cmd

	direct *redis.Client
}

// TLS makes a server speak only TLS, with certificates from CA.
type TLS struct {
	CA          *CA
	Server      Pair   // the server's certificate
	AuthClients bool   // require a client certificate signed by CA
	Client      Pair   // what Client presents; needed with AuthClients
	Name        string // the name Client checks the server's certificate for
}

func (c *TLS) args() []string {
	auth := "no"
	if c.AuthClients {
		auth = "yes"
	}
	return []string{
		"--tls-cert-file", c.Server.CertFile,
		"--tls-key-file", c.Server.KeyFile,
		"--tls-ca-cert-file", c.CA.File,
		"--tls-auth-clients", auth,
	}
}

// Binary returns the path of redis-server, or skips the test (fails it when
// REDIS_GATEWAY_REQUIRE_SERVER=1) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	return binary(t, "redis-server")
}

// Start runs redis-server on a free loopback port with no persistence, plus
// any extra arguments, and stops it when the test ends.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	LogClient(t)
	return start(t, nil, extra...)
}

// StartTLS runs redis-server like Start, speaking only TLS.
func StartTLS(t testing.TB, cfg TLS, extra ...string) *Server {
	t.Helper()
	LogClient(t)
	return start(t, &cfg, extra...)
}

// start picks free ports for the server (and its cluster bus, given
// --cluster-port) and starts it. A port is free only until someone else
// takes it, as a test running in parallel or another user of the machine
// may between freePort and redis-server's bind: start then tries new ports.
func start(t tb, cfg *TLS, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		s := &Server{t: t, bin: bin, Port: freePort(t), TLS: cfg}
		port := []string{"--port", strconv.Itoa(s.Port)}
		if cfg != nil {
			port = append([]string{"--port", "0", "--tls-port", strconv.Itoa(s.Port)}, cfg.args()...)
		}
		s.args = append(port,
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
		)
		s.args = append(s.args, extra...)
		if attempt > 1 {
			for i := range s.args[:len(s.args)-1] {
				if s.args[i] == "--cluster-port" {
					s.args[i+1] = strconv.Itoa(freePort(t))
				}
			}
		}
		err := s.launch()
		if errors.Is(err, errPortTaken) && attempt < 5 {
			continue
		}
		if err != nil {
			t.Fatalf("%v", err)
		}
		t.Cleanup(s.Stop)
		return s
	}
}

var errPortTaken = errors.New("port taken")

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is the redis:// URL of the server, rediss:// with TLS.
func (s *Server) URL() string {
	if s.TLS != nil {
		return "rediss://" + s.Addr()
	}
	return "redis://" + s.Addr()
}

func (s *Server) start() {
	s.t.Helper()
	if err := s.launch(); err != nil {
		s.t.Fatalf("%v", err)
	}
}

// launch runs redis-server and waits until it accepts connections, or until
// it exits: with errPortTaken when one of its ports was taken.
func (s *Server) launch() error {
	cmd := exec.Command(s.bin, s.args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	ready, ended := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var log strings.Builder
	go func() {
		defer close(ended)
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			if signalled {
				continue // keep draining the pipe, or the server blocks on it
			}
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "Ready to accept connections") {
				signalled = true
				close(ready)
			}
		}
	}()
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return log.String()
	}
	select {
	case <-ready:
		s.cmd = cmd
		return nil
	case <-ended:
		_ = cmd.Wait()
		if strings.Contains(output(), "Address already in use") {
			return fmt.Errorf("%w: redis-server on port %d:\n%s", errPortTaken, s.Port, output())
		}
		return fmt.Errorf("redis-server on port %d exited:\n%s", s.Port, output())
	case <-time.After(30 * time.Second): // a generous bound: it takes milliseconds
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("redis-server on port %d did not start within 30s:\n%s", s.Port, output())
	}
}

// Stop ends the server; Stop on a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", s.Addr())
		if err == nil {
			ln.Close()
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("port %d still taken: %v", s.Port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.start()
}

// Client returns a go-redis client to inspect the server directly; it is
// closed when the test ends.
func (s *Server) Client() *redis.Client {
	opts := &redis.Options{Addr: s.Addr(), DisableIdentity: true}
	if s.TLS != nil {
		opts.TLSConfig = s.TLS.CA.ClientConfig(s.TLS.Client, s.TLS.Name)
	}
	c := redis.NewClient(opts)
	s.t.Cleanup(func() { c.Close() })
	return c
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return freePort(t)
}

func freePort(t tb) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// WaitInSync waits until this server, a replica, has finished its initial
// sync with its primary, or fails the test. Start the primary with
// --repl-diskless-sync-delay 0, or the sync waits 5 s for more replicas.
func (s *Server) WaitInSync(within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		info, err := s.client().Info(context.Background(), "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("replica %s not in sync after %v: %v %s", s.Addr(), within, err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Freeze stops the server process (SIGSTOP) until Thaw: it answers nothing,
// and what is sent to it waits in its socket buffers.
func (s *Server) Freeze() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("SIGSTOP redis-server: %v", err)
	}
}

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatalf("SIGCONT redis-server: %v", err)
	}
}
