package testnet

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// scrapeMetric fetches Prometheus text from url and returns the sum of the
// samples of metric name whose labels include every label="value" pair in
// labels (given as "label", "value", ...). A metric with no sample is an
// error, so that a renamed metric does not read as zero.
func scrapeMetric(ctx context.Context, url, name string, labels ...string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("testnet: scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("testnet: scraping %s: %s", url, resp.Status)
	}
	return sumMetric(resp.Body, name, labels...)
}

// sumMetric reads Prometheus text and sums the matching samples.
func sumMetric(r io.Reader, name string, labels ...string) (float64, error) {
	if len(labels)%2 != 0 {
		return 0, fmt.Errorf("testnet: odd label list %q", labels)
	}
	var want []string
	for i := 0; i < len(labels); i += 2 {
		want = append(want, labels[i]+`="`+labels[i+1]+`"`)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sum, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		metric, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		base, lbls, _ := strings.Cut(metric, "{")
		if base != name {
			continue
		}
		match := true
		for _, w := range want {
			if !strings.Contains(lbls, w) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		// A sample may be followed by a timestamp.
		value, _, _ = strings.Cut(value, " ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, fmt.Errorf("testnet: metric line %q: %w", line, err)
		}
		sum, found = sum+v, true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("testnet: no sample of %s%v", name, want)
	}
	return sum, nil
}
