// Package ews is Tandem's Exchange Web Services client and its implementation of
// exchange.Connector.
//
// It speaks SOAP 1.1 exactly as Microsoft's EWS schema (types.xsd, messages.xsd) defines it, so
// the same code runs against Exchange Server 2016, 2019 and Subscription Edition on premises and
// against Exchange Online:
//
//   - Client sends one operation at a time to a mailbox's EWS endpoint, impersonating the mailbox
//     (ExchangeImpersonation header plus X-AnchorMailbox), with Basic or OAuth 2.0 client-credential
//     authentication, a per-mailbox concurrency cap, per-request timeouts, a response size cap and
//     bounded retries for failures that are safe to retry.
//   - Autodiscover finds a mailbox's EWS URL with SOAP GetUserSettings, falling back to the POX
//     endpoint, and caches the answer per user.
//   - Connector maps EWS contacts and calendar items to Tandem's canonical records and back, reads
//     changes with SyncFolderItems (fetching with GetItem only items whose change key the caller
//     does not already hold a record for) and writes with CreateItem/UpdateItem/DeleteItem,
//     without reading its writes back, tagging every
//     item it creates or updates with a sync key kept in an extended property. Creates that may
//     repeat an earlier attempt look their keys up first, in the target folder and in Deleted
//     Items, so that a retried create updates what an earlier attempt made and never brings back
//     an item the user deleted; first attempts are created directly.
//   - Streaming notifications (streaming.go): Subscribe, GetStreamingEvents read message by
//     message from the chunked stream, Unsubscribe, with the server affinity Exchange needs
//     (X-AnchorMailbox, X-PreferServerAffinity, X-BackEndOverrideCookie). A Watcher (watch.go)
//     keeps a subscription per watched mailbox, grouped by mailbox server, at most 200 to a
//     connection, and says which mailboxes changed.
//
// Every failure leaves this package classified once as a *syncerr.Error with an EXCHANGE_* code;
// the EWS-level cause stays in the chain as *ResponseError or *HTTPError for errors.As.
package ews
