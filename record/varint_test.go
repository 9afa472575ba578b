package record

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

func TestVarint(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		v32  int32 // want from varint32; n32 0 = refused
		n32  int
		v64  int64
		n64  int
	}{
		{"zero", []byte{0}, 0, 1, 0, 1},
		{"minus one", []byte{1}, -1, 1, -1, 1},
		{"63", []byte{0x7e}, 63, 1, 63, 1},
		{"-64", []byte{0x7f}, -64, 1, -64, 1},
		{"64", []byte{0x80, 0x01}, 64, 2, 64, 2},
		{"max int32", binary.AppendVarint(nil, math.MaxInt32), math.MaxInt32, 5, math.MaxInt32, 5},
		{"min int32", binary.AppendVarint(nil, math.MinInt32), math.MinInt32, 5, math.MinInt32, 5},
		{"max int32 + 1", binary.AppendVarint(nil, math.MaxInt32+1), 0, 0, math.MaxInt32 + 1, 5},
		{"min int32 - 1", binary.AppendVarint(nil, math.MinInt32-1), 0, 0, math.MinInt32 - 1, 5},
		{"max int64", binary.AppendVarint(nil, math.MaxInt64), 0, 0, math.MaxInt64, 10},
		{"min int64", binary.AppendVarint(nil, math.MinInt64), 0, 0, math.MinInt64, 10},
		{"0 in 6 bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 0, 0, 0, 6},
		{"0 in 11 bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 0, 0, 0, 0},
		{"10th byte overflows", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, 0, 0, 0, 0},
		{"empty", nil, 0, 0, 0, 0},
		{"truncated", []byte{0x80}, 0, 0, 0, 0},
		{"truncated long", []byte{0xff, 0xff, 0xff}, 0, 0, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v32, n32 := varint32(tc.in)
			if n32 <= 0 {
				n32 = 0
			}
			if v32 != tc.v32 || n32 != tc.n32 {
				t.Errorf("varint32 = %d, %d; want %d, %d", v32, n32, tc.v32, tc.n32)
			}
			v64, n64 := varint64(tc.in)
			if n64 <= 0 {
				n64 = 0
			}
			if v64 != tc.v64 || n64 != tc.n64 {
				t.Errorf("varint64 = %d, %d; want %d, %d", v64, n64, tc.v64, tc.n64)
			}
		})
	}
}

func TestAppendVarintMatchesStdlib(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	vals := []int64{0, -1, 1, 63, 64, -64, -65, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64}
	for range 10000 {
		vals = append(vals, rng.Int64()>>rng.IntN(64))
	}
	for _, v := range vals {
		want := binary.AppendVarint(nil, v)
		got := appendVarint(nil, v)
		if string(got) != string(want) || varintLen(v) != len(want) {
			t.Fatalf("%d: appendVarint %x, varintLen %d; stdlib %x", v, got, varintLen(v), want)
		}
		if back, n := varint64(got); back != v || n != len(got) {
			t.Fatalf("%d: varint64 read back %d, %d", v, back, n)
		}
	}
}
