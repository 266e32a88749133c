package measure

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Chart draws the results as an SVG: the mean sender entropy (left) and
// the best attack's success (right) against the median latency of a
// message, one line for cover on and one for cover off, each point
// labelled with its delay per hop; log2(N) on the left, a random guess and
// twice it on the right, as dashed lines.
func Chart(res *Result) []byte {
	const (
		panelW, panelH = 360.0, 260.0
		left, top      = 60.0, 40.0
		gap            = 90.0
		width          = left + 2*panelW + gap + 30
		height         = top + panelH + 70
	)
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")

	maxLat, maxBits, maxN := 1.0, 1.0, 0
	random := 0.0
	for _, c := range res.Cells {
		maxLat = max(maxLat, res.unscaled(c.Latency).Seconds()*1000)
		maxBits = max(maxBits, c.Entropy.Max)
		maxN = max(maxN, c.Senders)
		random = max(random, c.Timing.Random)
	}
	maxLat = niceCeil(maxLat * 1.1)
	maxBits = math.Ceil(maxBits + 0.25)

	type panel struct {
		x0      float64
		title   string
		yMax    float64
		yLabel  string
		value   func(CellResult) float64
		refs    []float64
		refName []string
	}
	panels := []panel{
		{left, "Sender entropy (mean over messages)", maxBits, "bits",
			func(c CellResult) float64 { return c.Entropy.Mean },
			[]float64{math.Log2(float64(max(maxN, 1)))}, []string{fmt.Sprintf("log2 N = %.2f", math.Log2(float64(max(maxN, 1))))}},
		{left + panelW + gap, "Best attack: share of senders named right", 1,
			"success", func(c CellResult) float64 { v, _ := c.BestAttack(); return v },
			[]float64{random, 2 * random}, []string{"random guess", "2× random"}},
	}
	for _, pn := range panels {
		x := func(v float64) float64 { return pn.x0 + v/maxLat*panelW }
		y := func(v float64) float64 { return top + panelH - v/pn.yMax*panelH }
		p(`<text x="%.1f" y="%.1f" font-size="14" font-weight="bold">%s</text>`+"\n", pn.x0, top-15, pn.title)
		p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#444"/>`+"\n", pn.x0, top, panelW, panelH)
		for i := 0; i <= 4; i++ {
			v := pn.yMax * float64(i) / 4
			p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", pn.x0, y(v), pn.x0+panelW, y(v))
			p(`<text x="%.1f" y="%.1f" text-anchor="end">%.2g</text>`+"\n", pn.x0-5, y(v)+4, v)
			lv := maxLat * float64(i) / 4
			p(`<text x="%.1f" y="%.1f" text-anchor="middle">%.0f</text>`+"\n", x(lv), top+panelH+16, lv)
		}
		p(`<text x="%.1f" y="%.1f" text-anchor="middle">median latency of a message (ms)</text>`+"\n", pn.x0+panelW/2, top+panelH+34)
		p(`<text transform="translate(%.1f,%.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", pn.x0-42, top+panelH/2, pn.yLabel)
		for i, r := range pn.refs {
			p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="5,4"/>`+"\n", pn.x0, y(r), pn.x0+panelW, y(r))
			p(`<text x="%.1f" y="%.1f" text-anchor="end" fill="#666">%s</text>`+"\n", pn.x0+panelW-4, y(r)-4, pn.refName[i])
		}
		for _, cover := range []bool{true, false} {
			var cells []CellResult
			for _, c := range res.Cells {
				if c.Cover == cover {
					cells = append(cells, c)
				}
			}
			slices.SortFunc(cells, func(a, b CellResult) int { return int(a.Delay - b.Delay) })
			color, dash := "#1f77b4", ""
			if !cover {
				color, dash = "#d62728", ` stroke-dasharray="2,3"`
			}
			var pts []string
			for _, c := range cells {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(res.unscaled(c.Latency).Seconds()*1000), y(pn.value(c))))
			}
			p(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), color, dash)
			for _, c := range cells {
				cx, cy := x(res.unscaled(c.Latency).Seconds()*1000), y(pn.value(c))
				p(`<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", cx, cy, color)
				p(`<text x="%.1f" y="%.1f" fill="%s" font-size="10">%v</text>`+"\n", cx+5, cy-5, color, c.Delay)
			}
		}
	}
	ly := top + panelH + 56
	p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#1f77b4" stroke-width="2"/><text x="%.1f" y="%.1f">cover on</text>`+"\n", left, ly, left+30, ly, left+35, ly+4)
	p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d62728" stroke-width="2" stroke-dasharray="2,3"/><text x="%.1f" y="%.1f">cover off</text>`+"\n", left+120, ly, left+150, ly, left+155, ly+4)
	p(`<text x="%.1f" y="%.1f" fill="#666">points labelled with the mean delay per hop; N = %d senders</text>`+"\n", left+260, ly+4, maxN)
	p("</svg>\n")
	return []byte(b.String())
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}
