// Package logtest holds what tests need to read logs and output that code
// under test writes from other goroutines.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer that several goroutines may write to while the test
// reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
