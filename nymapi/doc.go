// Package nymapi serves Nym's native-client WebSocket API for a peapod
// client, so that an application written for Nym's native client works
// unchanged against peapod. The messages and their two forms (binary frames
// and JSON in text frames) are those of package wsapi; this package is the
// server: New wraps a Backend (a *client.Client, or a fake in tests), and
// Serve or Handler accept applications on ws://127.0.0.1:1977 (any path), as
// Nym does.
//
// # Requests
//
// Every request maps to one call of the Backend:
//
//	Send               Backend.Send, on the lane connection_id (client.WithLane)
//	SendAnonymous      Backend.SendAnonymous with reply_surbs SURBs
//	Reply              Backend.Reply to the sender tag
//	SelfAddress        answered with SelfAddressResponse{Backend.Address()}
//	ClosedConnection   Backend.CloseLane (no answer, as in Nym)
//	GetLaneQueueLength answered with LaneQueueLength{lane, Backend.LaneQueueLength(lane)}
//
// As in Nym, a send, anonymous send or reply that names its connection id (a
// binary connection_id other than 0, or a JSON "connectionId" that is a
// number, 0 included: wsapi.Send.Lane) is answered, once the message is
// queued, with the LaneQueueLength of that lane; one that names none gets
// no answer when it succeeds. A send the client
// refuses at once (for example a reply to a sender tag with no SURBs left)
// is answered with an Error of kind "other"; a message whose delivery fails
// later (its fragments were never acknowledged, or the SURBs it waited for
// never came: client.ErrNoSURBs) is reported the same way to the connection
// that sent it, when it fails, rather than dropped in silence (Nym issue
// #1832). The message of such an Error names the request, the recipient or
// sender tag and the connection id, then the client's error. A request that
// does not parse is answered with the Error kind wsapi gives it (empty, too
// short, unknown request, malformed), and the connection stays usable.
//
// Requests of one connection are served in order, one at a time: a send that
// waits for room in the client's send queue holds back the requests after it
// (back-pressure), not those of other connections.
//
// # Several applications, one inbox
//
// Nym accepts one WebSocket at a time; this server accepts up to
// Config.MaxConnections. Every message that arrives from the mixnet goes to
// every open connection. The server reads from Backend.ReceiveKept only
// while at least one connection is open: messages that arrive while no
// application is connected wait in the client (and, beyond its bounded
// inbox, at the gateway) and go to the next application that connects. The
// client keeps each message in its data folder until it has been written to
// a connection's socket (Backend.Forget), so a crash of the client process
// loses none: what it had not written comes again after the restart. A
// message every connection it went to dropped unwritten (they closed first)
// goes to the next application that connects.
//
// # Frame types
//
// As in Nym, an answer goes out in the frame type of the request it answers,
// and every other frame (a received message, a failure reported later) in
// the frame type of the connection's last request, binary while there has
// been none. Nym sends the messages that waited for an application in binary
// frames even to a JSON application (Nym issue #3335); here the frames for a
// new connection are held until its first request shows its frame type, or
// for at most Config.FormatWait (1 s), after which binary is assumed. An
// application can also name its frame type in the handshake with the query
// parameter format=json (or format=text) or format=binary, for example
// ws://127.0.0.1:1977/?format=json; its frames then flow at once.
//
// In text frames, message data that is not valid UTF-8 travels in wsapi's
// "messageBase64" field, next to Nym's lossy "message", so binary payloads
// survive JSON while plain Nym JSON stays valid (see package wsapi).
//
// # Limits and liveness
//
// A request frame may hold up to Config.MaxFrameSize bytes (16 MiB by
// default): a message, not a Sphinx packet, so megabytes are fine; the
// client splits it into packets. A larger frame is read to its end, dropped,
// and answered with an Error (kind "malformed request"); the connection
// stays usable.
//
// Each connection has a bounded outgoing queue, in two shares bounded apart,
// each by Config.QueueFrames frames and Config.QueueBytes bytes: answers to
// its requests (the bytes are those of error texts, which repeat at most 64
// bytes of a request) and messages from the mixnet (the bytes are their
// data). When a share is full, what goes in it waits for room rather than
// being dropped; a connection that takes nothing from its full queue, or
// whose write blocks, for Config.SlowTimeout (10 s) is closed with a log
// line, and the others carry on. An application that sends requests and
// reads nothing fills only its answers' share, which holds back its own
// requests; the messages still reach the other connections. While one
// connection's messages' share is full, delivery to every connection pauses
// (for at most about SlowTimeout), so that no connection misses a message.
//
// The server sends a WebSocket ping every Config.PingInterval (30 s), the
// heartbeat Nym issue #1832 asked for; any WebSocket library answers it
// while the application reads. A connection from which nothing, not even a
// pong, arrives for three intervals is closed.
//
// Handshakes that carry an Origin header (from a web page) are accepted only
// from the same origin and from Config.AllowedOrigins (`client run
// --allow-origin`), so that a web site a user visits cannot drive the
// user's client; a refused one is answered 403 and logged with the origin
// to allow. Nym's client accepts every origin; see docs/protocol.md.
//
// # Metrics
//
// Server.Stats counts connections, refused handshakes, requests by type and
// error answers by kind; NewCollector exports them to Prometheus
// (peapod_client_api_*, served by `client run --metrics`).
//
// # Lifecycle
//
// New starts one goroutine; every connection has two (its reader runs on the
// HTTP handler's goroutine), and every message in flight has one that waits
// for its delivery. Close closes every connection with a "going away" close
// frame and returns when all of them have ended.
package nymapi
