package testnet

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// ProcessReport is one line of a resource report.
type ProcessReport struct {
	// Name is the process's name, or "<parent>/<program>" for a child
	// (a plugin).
	Name string
	// PeakRSS is in bytes.
	PeakRSS int64
	// Starts counts the starts of the process (restarts + 1); 0 for a
	// child, whose restarts its parent handles.
	Starts int
	// CPU is the CPU time used; 0 for a child (counted in its parent's).
	CPU time.Duration
}

// Resources lists every process of the network, then the children
// (plugins) each has run, with their peak RSS.
func (n *Network) Resources() []ProcessReport {
	var out []ProcessReport
	for _, p := range n.Processes() {
		out = append(out, ProcessReport{Name: p.Name(), PeakRSS: p.PeakRSS(), Starts: p.Starts(), CPU: p.CPU()})
		kids := p.ChildPeakRSS()
		names := make([]string, 0, len(kids))
		for k := range kids {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			out = append(out, ProcessReport{Name: p.Name() + "/" + k, PeakRSS: kids[k]})
		}
	}
	return out
}

// ResourceTable formats Resources as a text table.
func (n *Network) ResourceTable() string {
	return FormatResources(n.Resources())
}

// FormatResources formats a resource report as a text table.
func FormatResources(rs []ProcessReport) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "process\tpeak RSS (MiB)\tstarts\tCPU (s)\t")
	var total int64
	for _, r := range rs {
		starts, cpu := "", ""
		if r.Starts > 0 {
			starts = fmt.Sprint(r.Starts)
			cpu = fmt.Sprintf("%.2f", r.CPU.Seconds())
		}
		fmt.Fprintf(w, "%s\t%.1f\t%s\t%s\t\n", r.Name, float64(r.PeakRSS)/(1<<20), starts, cpu)
		total += r.PeakRSS
	}
	fmt.Fprintf(w, "sum of peaks\t%.1f\t\t\t\n", float64(total)/(1<<20))
	w.Flush()
	return b.String()
}
