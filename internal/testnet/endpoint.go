package testnet

import (
	"context"
	"errors"
	"fmt"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// Endpoint is a mixnet client as an application sees it: through the
// WebSocket API of a `client run` process ([WSEndpoint]) or a client
// library in the test process ([LibEndpoint]). Send methods may be called
// from several goroutines; Receive from one at a time.
type Endpoint interface {
	// Send sends data to to as a plain message.
	Send(ctx context.Context, to address.Address, data []byte) error
	// SendAnonymous sends data to to with surbs reply SURBs.
	SendAnonymous(ctx context.Context, to address.Address, data []byte, surbs int) error
	// Receive returns the next message that arrived. An error the client
	// reports about an earlier request is returned as a *ClientError, after
	// which the Endpoint stays usable; any other error ends it.
	Receive(ctx context.Context) (client.Message, error)
	// Close releases the endpoint.
	Close() error
}

// ClientError is an error the client reported through its API, such as a
// failed send.
type ClientError struct {
	// Err is the error response (a wsapi.Error) or the parse error.
	Err error
}

// Error returns the client's error, prefixed.
func (e *ClientError) Error() string { return "testnet: the client reports: " + e.Err.Error() }

// WSEndpoint is an Endpoint over a WebSocket API connection.
type WSEndpoint struct{ Conn *wsapi.Conn }

var _ Endpoint = (*WSEndpoint)(nil)

// Send implements Endpoint.
func (e *WSEndpoint) Send(ctx context.Context, to address.Address, data []byte) error {
	return e.Conn.Send(ctx, wsapi.Send{Recipient: to, Data: data})
}

// SendAnonymous implements Endpoint.
func (e *WSEndpoint) SendAnonymous(ctx context.Context, to address.Address, data []byte, surbs int) error {
	return e.Conn.Send(ctx, wsapi.SendAnonymous{Recipient: to, Data: data, ReplySURBs: uint32(surbs)})
}

// Receive implements Endpoint.
func (e *WSEndpoint) Receive(ctx context.Context) (client.Message, error) {
	for {
		r, err := e.Conn.Receive(ctx)
		if err != nil {
			var pe *wsapi.ProtocolError
			if errors.As(err, &pe) {
				return client.Message{}, &ClientError{Err: err}
			}
			return client.Message{}, err
		}
		switch r := r.(type) {
		case wsapi.Received:
			return client.Message{Data: r.Data, SenderTag: r.SenderTag}, nil
		case wsapi.Error:
			return client.Message{}, &ClientError{Err: r}
		default:
			// Lane queue lengths and the like: not for the test.
		}
	}
}

// Close implements Endpoint.
func (e *WSEndpoint) Close() error { return e.Conn.Close() }

// LibEndpoint is an Endpoint over a client library in this process.
type LibEndpoint struct{ Client *client.Client }

var _ Endpoint = (*LibEndpoint)(nil)

// Send implements Endpoint.
func (e *LibEndpoint) Send(ctx context.Context, to address.Address, data []byte) error {
	_, err := e.Client.Send(ctx, to, data)
	return err
}

// SendAnonymous implements Endpoint.
func (e *LibEndpoint) SendAnonymous(ctx context.Context, to address.Address, data []byte, surbs int) error {
	_, err := e.Client.SendAnonymous(ctx, to, data, surbs)
	return err
}

// Receive implements Endpoint.
func (e *LibEndpoint) Receive(ctx context.Context) (client.Message, error) {
	m, err := e.Client.Receive(ctx)
	if err != nil {
		return client.Message{}, fmt.Errorf("testnet: %w", err)
	}
	return m, nil
}

// Close implements Endpoint.
func (e *LibEndpoint) Close() error { return e.Client.Close() }
