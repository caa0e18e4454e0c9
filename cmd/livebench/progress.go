package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress draws a bar on one line of w while a long phase runs: label,
// done of total, and an optional note. Stop it before writing anything
// else there.
type progress struct {
	w     io.Writer
	label string
	total int64
	cur   func() int64
	note  func() string
	stop  chan struct{}
	done  sync.WaitGroup
}

// startProgress draws nothing when on is false.
func startProgress(on bool, w io.Writer, label string, total int64, cur func() int64, note func() string) *progress {
	p := &progress{w: w, label: label, total: total, cur: cur, note: note, stop: make(chan struct{})}
	if !on || total <= 0 {
		return p
	}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				fmt.Fprint(p.w, "\r\033[K")
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

func (p *progress) draw() {
	const width = 30
	n := min(p.cur(), p.total)
	fill := int(n * width / p.total)
	line := fmt.Sprintf("\r\033[K%-22s [%s%s] %d/%d", p.label, strings.Repeat("#", fill), strings.Repeat(".", width-fill), n, p.total)
	if p.note != nil {
		line += " " + p.note()
	}
	fmt.Fprint(p.w, line)
}

func (p *progress) end() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.done.Wait()
}

// isTerminal reports whether f is a character device, a terminal.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
