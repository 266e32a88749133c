package wsapi

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// replacementChar is U+FFFD in UTF-8.
const replacementChar = "\uFFFD"

func validUTF8(b []byte) bool { return utf8.Valid(b) }

// appendLossyUTF8 appends b with every invalid sequence replaced by U+FFFD,
// exactly as Rust's String::from_utf8_lossy does (and so as Nym does): each
// maximal prefix of a well-formed sequence becomes one U+FFFD. Go's own
// conversions differ (one U+FFFD per byte, or per run), which would change
// the text Nym's applications see.
func appendLossyUTF8[T string | []byte](dst []byte, b T) []byte {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			dst = append(dst, b[i])
			i++
			continue
		}
		valid, invalid := utf8Sequence(b[i:])
		if valid > 0 {
			dst = append(dst, b[i:i+valid]...)
			i += valid
			continue
		}
		dst = append(dst, replacementChar...)
		i += invalid
	}
	return dst
}

// utf8Sequence looks at the multi-byte sequence that starts b (b[0] >= 0x80).
// It returns the length of the well-formed sequence there, or 0 and the
// number of bytes that form the maximal invalid subpart (Unicode's
// "substitution of maximal subparts", the rule of Rust's Utf8Chunks).
func utf8Sequence[T string | []byte](b T) (valid, invalid int) {
	lo, hi := byte(0x80), byte(0xBF)
	var more int
	switch c := b[0]; {
	case c >= 0xC2 && c <= 0xDF:
		more = 1
	case c == 0xE0:
		more, lo = 2, 0xA0
	case c == 0xED:
		more, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		more = 2
	case c == 0xF0:
		more, lo = 3, 0x90
	case c == 0xF4:
		more, hi = 3, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		more = 3
	default:
		return 0, 1
	}
	for k := 1; k <= more; k++ {
		if k >= len(b) || b[k] < lo || b[k] > hi {
			return 0, k
		}
		lo, hi = 0x80, 0xBF
	}
	return more + 1, 0
}

// appendJSONString appends s as a JSON string the way serde_json writes it:
// only '"', '\\' and control characters are escaped, with \b \t \n \f \r
// where they exist and \u00xx (lower-case hex) for the rest. Invalid UTF-8
// in s is replaced as by appendLossyUTF8.
func appendJSONString[T string | []byte](dst []byte, s T) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			valid, invalid := utf8Sequence(s[i:])
			if valid > 0 {
				dst = append(dst, s[i:i+valid]...)
				i += valid
			} else {
				dst = append(dst, replacementChar...)
				i += invalid
			}
			continue
		}
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			} else {
				dst = append(dst, c)
			}
		}
		i++
	}
	return append(dst, '"')
}

var errBadJSONString = errors.New("not a valid JSON string")

// unquoteJSONString decodes one JSON string token, quotes included. Unlike
// encoding/json it refuses, as serde_json does, escapes of lone UTF-16
// surrogates instead of turning them into U+FFFD, and it refuses invalid
// UTF-8 and raw control characters.
func unquoteJSONString(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errBadJSONString
	}
	body := raw[1 : len(raw)-1]
	simple := true
	for _, c := range body {
		if c == '\\' || c == '"' || c < 0x20 {
			simple = false
			break
		}
	}
	if simple {
		if !utf8.Valid(body) {
			return "", errBadJSONString
		}
		return string(body), nil
	}
	out := make([]byte, 0, len(body))
	for i := 0; i < len(body); {
		c := body[i]
		switch {
		case c == '"' || c < 0x20:
			return "", errBadJSONString
		case c != '\\':
			if c < utf8.RuneSelf {
				out = append(out, c)
				i++
				continue
			}
			r, size := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && size == 1 {
				return "", errBadJSONString
			}
			out = append(out, body[i:i+size]...)
			i += size
			continue
		}
		if i+1 >= len(body) {
			return "", errBadJSONString
		}
		esc := body[i+1]
		i += 2
		switch esc {
		case '"', '\\', '/':
			out = append(out, esc)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(body, i)
			if !ok {
				return "", errBadJSONString
			}
			i += 4
			if utf16.IsSurrogate(r) {
				// Must be a high surrogate followed by \u and a low one.
				if r >= 0xDC00 || i+6 > len(body) || body[i] != '\\' || body[i+1] != 'u' {
					return "", errors.New("lone surrogate in \\u escape")
				}
				low, ok := hex4(body, i+2)
				if !ok {
					return "", errBadJSONString
				}
				r = utf16.DecodeRune(r, low)
				if r == utf8.RuneError {
					return "", errors.New("lone surrogate in \\u escape")
				}
				i += 6
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", errBadJSONString
		}
	}
	return string(out), nil
}

// hex4 reads four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[i:i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	return rune(v), true
}
