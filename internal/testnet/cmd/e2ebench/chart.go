package main

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"

	"github.com/peapod-mixnet/peapod/internal/testnet"
)

// Chart geometry, in SVG user units.
const (
	chartW                             = 760
	marginL, marginR, marginT, marginB = 70, 20, 50, 60
	plotHeight                         = 330
	legendLine                         = 18
)

// series is one latency distribution to draw.
type series struct {
	label  string
	color  string
	dashed bool
	values []time.Duration // sorted
}

// chart draws the cumulative distribution of each mode's latencies, loaded
// and unloaded, on a logarithmic time axis.
func chart(rs []*result) []byte {
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}
	var ss []series
	for i, r := range rs {
		c := colors[i%len(colors)]
		ss = append(ss,
			series{label: r.name + ", one request at a time", color: c, values: r.unloaded},
			series{label: r.name + ", under load", color: c, dashed: true, values: r.loaded})
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		if len(s.values) == 0 {
			continue
		}
		lo = math.Min(lo, msf(s.values[0]))
		hi = math.Max(hi, msf(s.values[len(s.values)-1]))
	}
	if math.IsInf(lo, 0) {
		lo, hi = 1, 10
	}
	// The axis runs between the 1-2-5 values around the data.
	ticks := ticks125(lo, hi)
	decLo, decHi := math.Log10(ticks[0]), math.Log10(ticks[len(ticks)-1])
	chartH := marginT + plotHeight + marginB + legendLine*len(ss) + 10
	plotW := float64(chartW - marginL - marginR)
	plotH := float64(plotHeight)
	x := func(ms float64) float64 {
		ms = math.Max(ms, math.Pow(10, decLo))
		return marginL + (math.Log10(ms)-decLo)/(decHi-decLo)*plotW
	}
	y := func(frac float64) float64 { return marginT + (1-frac)*plotH }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", chartW, chartH)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">Echo request latency through the mixnet (cumulative)</text>`+"\n", marginL)

	// Grid and ticks.
	for _, v := range ticks {
		px := x(v)
		stroke := "#e0e0e0"
		if m := v / math.Pow(10, math.Floor(math.Log10(v)+1e-9)); math.Abs(m-1) < 1e-9 {
			stroke = "#b0b0b0"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", px, marginT, px, y(0), stroke)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px, y(0)+16, tickLabel(v))
	}
	for _, p := range []float64{0, 0.25, 0.5, 0.75, 0.9, 1} {
		py := y(p)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e0e0e0"/>`+"\n", marginL, py, x(math.Pow(10, decHi)), py)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%g%%</text>`+"\n", marginL-6, py+4, p*100)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%.1f" fill="none" stroke="#404040"/>`+"\n", marginL, marginT, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">latency, milliseconds (log scale)</text>`+"\n", marginL+plotW/2, y(0)+36)
	fmt.Fprintf(&b, `<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">requests answered within (%%)</text>`+"\n", marginT+plotH/2)

	// The curves: a step for every request.
	for _, s := range ss {
		if len(s.values) == 0 {
			continue
		}
		var pts []string
		n := float64(len(s.values))
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(msf(s.values[0])), y(0)))
		for i, v := range s.values {
			px := x(msf(v))
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px, y(float64(i)/n)), fmt.Sprintf("%.1f,%.1f", px, y(float64(i+1)/n)))
		}
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", s.color, dash, strings.Join(pts, " "))
	}

	// Legend, under the plot.
	ly := y(0) + 62
	for i, s := range ss {
		if len(s.values) == 0 {
			continue
		}
		yy := ly + float64(i*legendLine)
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", marginL, yy-4, marginL+28, yy-4, s.color, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f">%s: median %s, p99 %s, %d requests</text>`+"\n", marginL+36, yy,
			html.EscapeString(s.label), ms(s.values[len(s.values)/2]), ms(percentile(s.values, 99)), len(s.values))
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	return testnet.Percentile(sorted, p)
}

// ticks125 returns the values 1, 2 and 5 times a power of ten from the
// largest one at or below lo to the smallest one at or above hi.
func ticks125(lo, hi float64) []float64 {
	lo, hi = math.Max(lo, 0.01), math.Max(hi, lo)
	var out []float64
	for d := math.Floor(math.Log10(lo)); ; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			next := nextTick(v)
			if next <= lo*(1+1e-9) {
				continue // a later tick is still at or below lo
			}
			out = append(out, v)
			if v >= hi {
				return out
			}
		}
	}
}

// nextTick is the 1-2-5 value after v.
func nextTick(v float64) float64 {
	d := math.Pow(10, math.Floor(math.Log10(v)+1e-9))
	switch m := math.Round(v / d); m {
	case 1:
		return 2 * d
	case 2:
		return 5 * d
	}
	return 10 * d
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func tickLabel(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%gs", ms/1000)
	}
	return fmt.Sprintf("%g", ms)
}
