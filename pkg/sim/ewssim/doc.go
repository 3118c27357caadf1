// Package ewssim is an in-process Microsoft Exchange server that speaks the real Exchange Web
// Services protocol: SOAP 1.1 over HTTP at /EWS/Exchange.asmx, SOAP and POX Autodiscover, Basic
// and OAuth 2.0 bearer authentication (with a built-in client-credentials token endpoint) and
// Exchange impersonation.
//
// It exists so that Tandem's EWS client, its conformance suite, `tandem dev` and the benchmarks
// can run against something that behaves like Exchange 2016/2019/Online without a real
// server. It is deliberately an independent implementation of the protocol (it does not share
// code with package ews), so that a client bug is not mirrored by the same bug here.
//
// # What it implements
//
// Operations: GetFolder, FindFolder, CreateFolder, SyncFolderItems, GetItem, FindItem,
// CreateItem, UpdateItem and DeleteItem, for contacts, calendar items and (minimally) messages,
// and streaming notifications (Subscribe, GetStreamingEvents, Unsubscribe; see notify.go),
// including generic extended properties, restrictions (IsEqualTo, IsNotEqualTo, the ordering
// comparisons, Contains, Exists, And, Or, Not), ChangeKey conflicts, batches with per-item
// errors, and SyncFolderItems with opaque sync states, paging and Exchange-like coalescing of
// changes. Every response body validates against Microsoft's EWS schema (the package tests
// check this with xmllint).
//
// Requests are checked the way Exchange checks them where that catches client bugs: item
// properties must come in schema order, RequestServerVersion must be present and valid, calendar
// writes must say whether meeting invitations are sent, MaxChangesReturned must be 1..512.
// Problems the schema would reject are answered with a SOAP fault (HTTP 500), problems with one
// item of a batch with an error response message for that item, exactly as Exchange does.
//
// # Deliberate simplifications
//
//   - Requests without an X-AnchorMailbox header are served but counted (Counts key
//     "MissingAnchorMailbox"); set Config.RequireAnchorMailbox to reject them instead.
//   - A missing RequestServerVersion header is rejected (Exchange would assume Exchange2007_SP1),
//     because Tandem's client must always send it.
//   - FindItem refuses to return properties Exchange only returns from GetItem (body, attendees,
//     recurrence, ...) with ErrorInvalidPropertyRequest; SyncFolderItems silently leaves them out.
//   - Birthdays are stored as a date and returned at 11:59 UTC on that date, as Exchange Online does.
//   - Recurring series are stored as their master; occurrences are not expanded and
//     DeletedOccurrences/ModifiedOccurrences can only be set from the Go API (as a user would in
//     Outlook). FindItem with a CalendarView is refused with ErrorInvalidRequest.
//   - Throttling (ErrorServerBusy) is reported as a SOAP fault carrying BackOffMilliseconds in
//     MessageXml, the form Exchange Online uses for EWS throttling.
//   - Autodiscover answers for any mailbox of the server, with the caller's credentials; an
//     unknown address is ErrorCode InvalidUser (SOAP) or error 500 (POX), as Exchange reports it.
//   - Messages are kept only as far as SyncFolderItems needs them (subject, body, read flag), so
//     that ReadFlagChange can be exercised; the simulator never sends mail.
//   - Notifications: only streaming subscriptions (pull and push are refused with
//     ErrorInvalidSubscriptionRequest). Every change made through EWS or the Go API produces
//     the events Exchange sends for it — CreatedEvent, ModifiedEvent, DeletedEvent, MovedEvent
//     (one event, with the old and new ids, for subscribers of either folder), NewMailEvent for
//     messages put in the Inbox, and a ModifiedEvent for a folder whose item counts changed —
//     but never CopiedEvent or FreeBusyChangedEvent (nothing copies, there is no free/busy).
//     Notification is written in the messages namespace, as Exchange writes it, although
//     types.xsd declares it in the types namespace. A GetStreamingEvents naming a subscription
//     it cannot use fails as a whole (ResponseClass Error, the first subscription's code, every
//     such subscription in ErrorSubscriptionIds, ConnectionStatus Closed). Subscriptions expire
//     30 minutes (of Config.Clock) after their last connection ended; DropSubscriptions and
//     CutStreams stand in for a restarted mailbox server and a broken network.
//
// # Using it
//
//	sim := ewssim.New(ewssim.Config{ServiceAccounts: []ewssim.ServiceAccount{{
//		Username: "svc@contoso.com", Password: "secret", ImpersonateAll: true,
//	}}})
//	ts := httptest.NewServer(sim)
//	sim.SetBaseURL(ts.URL)
//	_ = sim.Seed("alice@contoso.com", 100, 20, 1)
//
// The Go API (PutContact, UpdateItem, MoveItem, ...) acts as the mailbox owner would in
// Outlook; InjectFault makes the next matching requests fail in a chosen way; Counts reports
// what clients asked for; Dump renders every mailbox as JSON-ready data.
package ewssim
