package gwproto

import (
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// FuzzHello sends any first frame to a gateway: it answers a clear
// handshake error (malformed, version, or authentication for a hello that
// does not open with its key) and closes the connection.
func FuzzHello(f *testing.F) {
	g := newTestGateway(f)
	f.Add([]byte{tagHello, Version})
	f.Add(append([]byte{tagHello, Version}, make([]byte, noiseMessageSize)...))
	f.Add(append([]byte{tagHello, 9}, make([]byte, noiseMessageSize)...))
	f.Add([]byte{tagRegisterRequest, 1, 2, 3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ws := g.dial(t)
		if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
			t.Fatal(err)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, reply, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("no answer to a bad hello: %v", err)
		}
		var re *RemoteError
		if len(reply) == 0 || reply[0] != tagHandshakeError || !errors.As(remoteError(reply), &re) {
			t.Fatalf("answer %x is not a handshake error", reply)
		}
		switch re.Code {
		case CodeMalformed, CodeVersion, CodeAuthentication:
		default:
			t.Fatalf("a bad hello got code %v", re.Code)
		}
		if _, _, err := ws.ReadMessage(); err == nil {
			t.Fatal("the connection stayed open after a handshake error")
		}
	})
}

// FuzzSealedRequest sends any request inside a real Noise channel: the
// gateway answers a sealed handshake error (nothing the fuzzer makes holds
// a valid signature) and carries on.
func FuzzSealedRequest(f *testing.F) {
	g := newTestGateway(f)
	f.Add([]byte{tagRegisterRequest, Version})
	f.Add(append([]byte{tagAuthRequest, Version}, make([]byte, authRequestSize-2)...))
	f.Add(append([]byte{tagRegisterRequest, Version}, make([]byte, registerRequestSize-2)...))
	f.Add(append(append([]byte{tagAuthRequest, Version}, make([]byte, authRequestSize-2)...), 1))
	f.Add([]byte{tagAuthRequest, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxErrorText {
			return // longer than any handshake message; the gateway refuses to read it
		}
		ch, err := openChannel(g.dial(t), g.noise.Public(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.write(b); err != nil {
			t.Fatal(err)
		}
		ch.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = readHandshakeReply(ch, tagAuthResponse, authResponseSize)
		var re *RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("a bad request got %v, want a handshake error", err)
		}
		switch re.Code {
		case CodeMalformed, CodeVersion, CodeAuthentication, CodeStale, CodeNotRegistered:
		default:
			t.Fatalf("a bad request got code %v", re.Code)
		}
	})
}
