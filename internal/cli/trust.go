package cli

import (
	"flag"
	"fmt"
	"strings"

	"github.com/peapod-mixnet/peapod/directory"
)

// The trust a consumer of the topology (mixnode, gateway, client,
// provider) is configured with: the directory authorities' keys, separated
// by commas (the key authorities of the command's section), and the
// threshold (threshold).

// TrustFlags binds --authorities and --threshold.
func TrustFlags(fs *flag.FlagSet, authorities *string, threshold *int) {
	fs.StringVar(authorities, "authorities", *authorities, "the directory authorities' base58 `keys`, separated by commas: accept only a topology signed by a threshold of them (default: none, which trusts whatever the directory URL serves)")
	fs.IntVar(threshold, "threshold", *threshold, "signatures of distinct authorities a topology needs (0: a majority)")
}

// ParseTrust returns the trust of authorities (base58 keys separated by
// commas) and threshold, nil when no authority is named.
func ParseTrust(authorities string, threshold int) (*directory.Trust, error) {
	var keys []string
	for k := range strings.SplitSeq(authorities, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		if threshold != 0 {
			return nil, fmt.Errorf("a threshold of %d without authority keys", threshold)
		}
		return nil, nil
	}
	t, err := directory.ParseTrust(keys, threshold)
	if err != nil {
		return nil, err
	}
	return &t, nil
}
