package capture_test

import (
	"testing"

	"github.com/restlive/restlive/capture/internal/capturetest"
)

func TestConformance(t *testing.T) { capturetest.Run(t, capturetest.OpenSQLite) }

func BenchmarkInsert(b *testing.B) { capturetest.BenchInsert(b, capturetest.OpenSQLite) }

func BenchmarkLatency(b *testing.B) { capturetest.BenchLatency(b, capturetest.OpenSQLite) }
