// Package directory is the mixnet's map: which mixnodes (each in layer 1, 2
// or 3) and gateways exist, where they listen, and their public keys.
//
// The pieces fit together like this:
//
//   - A node (mixnode or gateway) describes itself with a [Descriptor] and
//     runs a [Registrar], which registers the descriptor with the directory at
//     start-up, re-registers it periodically and deregisters it on shutdown.
//     Every request is signed with the node's ed25519 identity key, so only the
//     holder of that key can add, change or remove the node's entry.
//   - The [Server] keeps the entries in a bbolt database, drops an entry from
//     the published topology when it has not been refreshed within its TTL,
//     and serves the [Topology] over HTTP.
//   - Clients fetch the topology with [Client.Topology] and use the typed
//     accessors of [Mixnode] and [Gateway] to get keys and addresses.
//
// # Wire format
//
// GET /v1/topology returns a JSON [Topology]. POST /v1/register and POST
// /v1/deregister take a JSON [Descriptor] as body and a [SignatureHeader]
// holding the standard base64 encoding of an ed25519 signature, made with the
// identity key named in the body, over
//
//	"peapod-directory-v1\n" + path + "\n" + body
//
// where path is [PathRegister] or [PathDeregister]. The descriptor's
// timestamp (unix nanoseconds) must lie within the server's clock skew and be
// strictly greater than the last one accepted for the same identity, which
// makes every signed request usable once. Keys travel as base58 (Bitcoin
// alphabet) of exactly [KeySize] bytes.
//
// A refused request gets a body {"error":"<reason>"} and one of these
// statuses, which [Client] returns as a [*StatusError]:
//
//	400  the body is not a valid descriptor, or its timestamp is too far from the server's clock
//	401  the signature is missing or invalid (one message for every cause)
//	403  the identity is not on the directory's allow-list (Config.AllowList)
//	409  the timestamp is not after the last one accepted for the identity (a replay)
//	413  the body is larger than MaxDescriptorSize
//	429  the directory holds Config.MaxNodes identities already, or the
//	     source (or everyone) sent more requests than Config.RegisterRate allows
//
// An accepted request gets 200 and {"status":"registered"} or
// {"status":"deregistered"}. Deregistering an identity the server does not
// know succeeds and changes nothing.
package directory

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"
)

// HTTP paths served by the directory.
const (
	PathTopology = "/v1/topology"
	// PathDocument serves the last signed topology [Document] an authority
	// published, and PathVote its own signed view, for its peers.
	PathDocument   = "/v1/document"
	PathVote       = "/v1/vote"
	PathRegister   = "/v1/register"
	PathDeregister = "/v1/deregister"
	PathHealth     = "/healthz"
	PathMetrics    = "/metrics"
)

// SignatureHeader is the HTTP header carrying the signature of a
// registration or deregistration request.
const SignatureHeader = "Peapod-Signature"

// SignatureContext prefixes the bytes a node signs; it names the protocol
// and its version so a signature can never be reused elsewhere.
const SignatureContext = "peapod-directory-v1\n"

// KeySize is the length in bytes of an ed25519 identity key and of an
// X25519 Sphinx key.
const KeySize = 32

// MaxDescriptorSize is the largest request body the server reads.
const MaxDescriptorSize = 64 << 10

// MaxTopologySize is the largest topology response a [Client] reads.
const MaxTopologySize = 16 << 20

// Layer bounds of a mixnode.
const (
	MinLayer = 1
	MaxLayer = 3
)

// Defaults for the server's [Config] and the [Registrar].
const (
	DefaultTTL          = 90 * time.Second
	DefaultMaxNodes     = 10000
	DefaultMaxClockSkew = 120 * time.Second
)

// errSignature is the one message for every signature failure, so that a
// caller learns nothing about which part of the check failed.
var errSignature = errors.New("directory: missing or invalid signature")

// signedMessage returns the bytes a node signs for a request to path with
// the given body.
func signedMessage(path string, body []byte) []byte {
	msg := make([]byte, 0, len(SignatureContext)+len(path)+1+len(body))
	msg = append(msg, SignatureContext...)
	msg = append(msg, path...)
	msg = append(msg, '\n')
	return append(msg, body...)
}

// sign returns the SignatureHeader value for a request to path with body.
func sign(key ed25519.PrivateKey, path string, body []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, signedMessage(path, body)))
}

// verify reports whether header is a valid signature by identity over a
// request to path with body. Any malformed header is simply invalid.
func verify(identity ed25519.PublicKey, path string, body []byte, header string) bool {
	if len(header) != base64.StdEncoding.EncodedLen(ed25519.SignatureSize) {
		return false
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(header)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(identity, signedMessage(path, body), sig)
}

// headerSignature returns the request's signature header; a request with the
// header repeated is treated as unsigned.
func headerSignature(h http.Header) string {
	values := h.Values(SignatureHeader)
	if len(values) != 1 {
		return ""
	}
	return values[0]
}

// reason returns err's message without the package prefix, for embedding
// in another message or in an HTTP error body.
func reason(err error) string {
	return strings.TrimPrefix(err.Error(), "directory: ")
}
