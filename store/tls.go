package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// TLSOptions configure TLS to Redis. TLS is on when Enabled is set or the URL
// is rediss://; the other fields only refine it.
type TLSOptions struct {
	Enabled            bool   // REDIS_TLS_ENABLED, for cluster node lists that have no scheme
	CAFile             string // PEM CA bundle that signed the servers; empty = the system roots
	CertFile, KeyFile  string // client certificate, for servers that require mutual TLS
	ServerName         string // the name certificates must hold; empty = each node's host name
	InsecureSkipVerify bool   // development only: any certificate is accepted
}

func (o TLSOptions) configured() bool {
	return o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" || o.ServerName != "" || o.InsecureSkipVerify
}

// tlsConfig builds the client configuration shared by every connection; the
// dialer fills in ServerName per node.
func (o TLSOptions) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("REDIS_TLS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("REDIS_TLS_CA_FILE: %s holds no PEM certificate", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case o.CertFile != "" || o.KeyFile != "":
		return nil, errors.New("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together: set both or neither")
	}
	return cfg, nil
}

// dialer opens connections to Redis nodes, over TLS when tls is set. go-redis
// applies REDIS_DIAL_TIMEOUT through ctx, to the handshake too.
type dialer struct {
	tls *tls.Config
	// name is what a node's certificate is checked against when the node is
	// reached by IP address, as cluster nodes announce themselves: the
	// configured server name, or the host name of the first configured node.
	name     string
	override bool // name came from REDIS_TLS_SERVER_NAME and applies to host names too
	failed   func()
}

var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := d.open(ctx, network, addr)
	if err != nil && d.failed != nil {
		d.failed()
	}
	return conn, err
}

func (d *dialer) open(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{KeepAliveConfig: keepAlive}
	conn, err := nd.DialContext(ctx, network, addr)
	if err != nil || d.tls == nil {
		return conn, err
	}
	cfg := d.tls.Clone()
	cfg.ServerName = d.serverName(addr)
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, &TLSError{Addr: addr, ServerName: cfg.ServerName, Err: err}
	}
	return tc, nil
}

// serverName is the name addr's certificate must hold. A node reached by IP
// address is still checked against a name, so that discovered cluster nodes
// are held to the same certificate as the configured endpoint.
func (d *dialer) serverName(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if d.override || (net.ParseIP(host) != nil && d.name != "") {
		return d.name
	}
	return host
}

// TLSError is a TLS failure with a Redis node. Its message says what failed
// and which setting fixes it, where a bare handshake error would say "EOF".
type TLSError struct {
	Addr       string
	ServerName string
	Err        error
}

func (e *TLSError) Error() string {
	if e.Addr == "" {
		return "TLS failed: " + e.reason()
	}
	return fmt.Sprintf("TLS with %s failed: %s", e.Addr, e.reason())
}

// isTLSAlert reports an alert from the server after the handshake: with TLS
// 1.3 a missing client certificate is refused only then.
func isTLSAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

func (e *TLSError) Unwrap() error { return e.Err }

func (e *TLSError) reason() string {
	var unknown x509.UnknownAuthorityError
	var name x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	var op *net.OpError
	switch {
	case errors.As(e.Err, &unknown):
		return "the server's certificate is signed by an unknown authority " +
			"(set REDIS_TLS_CA_FILE to the CA that signed it): " + e.Err.Error()
	case errors.As(e.Err, &name):
		return fmt.Sprintf("name mismatch: the server's certificate is not valid for %q "+
			"(connect by a name the certificate holds, or set REDIS_TLS_SERVER_NAME): %v", e.ServerName, e.Err)
	case errors.As(e.Err, &invalid):
		return "the server's certificate is not valid: " + e.Err.Error()
	case errors.As(e.Err, &header):
		return "the server does not speak TLS (a plain-text port? then use redis://): " + e.Err.Error()
	case errors.As(e.Err, &op) && op.Op == "remote error":
		msg := op.Err.Error()
		if strings.Contains(msg, "certificate required") || strings.Contains(msg, "bad certificate") ||
			strings.Contains(msg, "unknown certificate authority") {
			return "the server refused the client certificate or wants one " +
				"(set REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE to one its CA signed): " + msg
		}
		return "the server sent the alert: " + msg
	case errors.Is(e.Err, io.EOF), errors.Is(e.Err, io.ErrUnexpectedEOF):
		return "the server closed the connection during the handshake " +
			"(it may require a client certificate, or not speak TLS on this port)"
	case errors.Is(e.Err, context.DeadlineExceeded):
		return "the handshake did not complete in time " +
			"(a plain-text port answers a TLS handshake with silence: then use redis://)"
	}
	return "handshake: " + e.Err.Error()
}
