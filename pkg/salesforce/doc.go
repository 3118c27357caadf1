// Package salesforce is Tandem's Salesforce REST client and the connector the
// salesforce-worker uses to read and write an org's contacts and events.
//
// Salesforce API calls are a scarce daily budget shared with everything else in the org, so
// the connector is built around spending few of them:
//
//   - Change detection polls per org, not per user: one SOQL queryAll per object per cycle
//     covers every syncing user (OwnerId IN (...), chunked under SOQL's statement length
//     limit) and also reports deletes (IsDeleted = true rows from the recycle bin). Rows are
//     routed to users by OwnerId. Polls resume exactly after the last (SystemModstamp second,
//     Id) read, so an idle org's poll returns no row; while a transaction that began before
//     the last poll may still commit records stamped behind it (the overlap, cut short by
//     getUpdated's word on what is committed), the same query reads those seconds back, and
//     only records whose content changed are reported again.
//   - Writes use sObject Collections, 200 records a call, always allOrNone=false, so one bad
//     record never fails its batch. By default they act as the integration user, setting
//     OwnerId on creates, so that ApplyMany puts the writes of many reps into the same calls
//     (and one Account lookup); an org's write_as REP makes each rep write their own records. Creates are upserts on the external id field
//     Tandem_Sync_Key__c: a retried create finds its first attempt instead of duplicating.
//     Upserts do not see the recycle bin, so a batch marked Redelivered first looks its sync
//     keys up with queryAll (one call per 200 keys) and does not bring back a record its
//     earlier attempt created and the user has deleted since.
//   - Every response's Sforce-Limit-Info header feeds a per-org budget that keeps a
//     configurable reserve of the daily allocation for everything else in the org.
//   - Changes can also be pushed: (*Connector).PubSub subscribes to Change Data Capture events
//     (/data/ContactChangeEvent, /data/EventChangeEvent) through the Pub/Sub API over gRPC, as
//     the integration user, from a stored replay id. The salesforce-worker uses them only to
//     poll at once instead of at the next interval; the poll still reads the records.
//
// Authentication is the OAuth 2.0 JWT bearer flow with a token for the integration user, which
// runs org-wide reads and (by default) every write, plus, under write_as REP, one per rep that
// writes (records are created as their owner); or the client credentials flow. An expired session costs exactly one single-flight renewal per
// token, however many requests notice it at once.
//
// Every failure leaving this package is a *syncerr.Error with a SALESFORCE_* code (Delay set
// when Tandem must back off); the typed upstream errors (*APIError, *TokenError) stay in its
// chain for errors.As.
package salesforce
