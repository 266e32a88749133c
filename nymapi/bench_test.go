package nymapi

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// BenchmarkReceived measures messages from the backend to one application
// over loopback, against a baseline of the same frames written straight to
// a gorilla WebSocket in the same run.
func BenchmarkReceived(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		data := make([]byte, size)
		b.Run(fmt.Sprintf("nymapi/%dKiB", size>>10), func(b *testing.B) {
			ts := startServer(b, Config{})
			app := dialRaw(b, ts.url)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			go func() {
				for range b.N {
					ts.fake.inbox <- client.Message{Data: data}
				}
			}()
			for range b.N {
				if _, _, err := app.ws.ReadMessage(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("baseline/%dKiB", size>>10), func(b *testing.B) {
			frame := wsapi.AppendResponse(nil, wsapi.Received{Data: data})
			ln := listen(b)
			done := make(chan struct{})
			go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer ws.Close()
				for range b.N {
					if ws.WriteMessage(websocket.BinaryMessage, frame) != nil {
						break
					}
				}
				<-done
			}))
			defer ln.Close()
			defer close(done)
			app := dialRaw(b, "ws://"+ln.Addr().String())
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for range b.N {
				if _, _, err := app.ws.ReadMessage(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSendRequests measures Send requests from one application to the
// backend, with a SelfAddress round trip every 256 requests to keep the
// application from running ahead.
func BenchmarkSendRequests(b *testing.B) {
	ts := startServer(b, Config{})
	app := dialRaw(b, ts.url)
	frame := wsapi.AppendRequest(nil, wsapi.Send{Recipient: mustParse(b, nymExample), ConnectionID: 1, Data: make([]byte, 1<<10)})
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-ts.fake.calls:
			case <-done:
				return
			}
		}
	}()
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for i := range b.N {
		app.write(websocket.BinaryMessage, frame)
		if i%256 == 255 {
			app.binary(wsapi.SelfAddress{})
			app.readBinary()
		}
	}
	app.binary(wsapi.SelfAddress{})
	app.readBinary()
}
