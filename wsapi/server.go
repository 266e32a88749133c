package wsapi

import (
	"fmt"

	"github.com/gorilla/websocket"
)

// ReadRequest reads the next request from ws, a connection a server
// accepted. text reports whether it came in a text frame (JSON) rather than
// a binary one; the server must answer in the same frame type, as Nym does.
//
// A frame that does not parse gives a *ProtocolError (the frame is
// consumed; the server should answer with its Response() and go on reading).
// Any other error comes from the connection and ends it. ReadRequest must
// not be called concurrently with another read on ws.
func ReadRequest(ws *websocket.Conn) (r Request, text bool, err error) {
	typ, frame, err := ws.ReadMessage()
	if err != nil {
		return nil, false, fmt.Errorf("wsapi: reading request: %w", err)
	}
	if typ == websocket.TextMessage {
		r, err := ParseJSONRequest(frame)
		return r, true, err
	}
	r, err = ParseRequest(frame)
	return r, false, err
}

// WriteResponse writes r to ws as one frame: JSON in a text frame when text
// is true, the binary form in a binary frame otherwise. It must not be called
// concurrently with another write on ws.
func WriteResponse(ws *websocket.Conn, r Response, text bool) error {
	if r == nil {
		return fmt.Errorf("wsapi: writing a nil response")
	}
	typ, frame := websocket.BinaryMessage, r.appendBinary(nil)
	if text {
		typ, frame = websocket.TextMessage, r.appendJSON(nil)
	}
	if err := ws.WriteMessage(typ, frame); err != nil {
		return fmt.Errorf("wsapi: writing response: %w", err)
	}
	return nil
}
