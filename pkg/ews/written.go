package ews

import (
	"cmp"

	"github.com/beevik/etree"

	"github.com/tandem-sync/tandem/pkg/record"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// A write's result carries the record as Exchange now holds it, and Tandem keeps it as its view
// of the item (the mirror whose version a later read's change key is compared with). It is
// built without reading the item back: CreateItem and UpdateItem answer with the item's id and
// new change key (ItemInfoResponseMessageType holds the item with its ItemId only), and the
// content is what the command wrote, in the form a read returns it.
//
// That form is what the connector's own mapping makes of it, and nothing else: the simulator
// stores what it is sent, and the recorded answers of Exchange Online and Exchange 2019 (GetItem
// after CreateItem and UpdateItem) hold the values written, with only the defaults and the
// normalisation this mapping already decides. So the content is mapped to the XML the write
// sends and read back from it with the read mapping (heldForm), which reproduces:
//
//   - Sensitivity and LegacyFreeBusyStatus: always written (Normal and Busy by default), so an
//     unset value reads back as the default;
//   - Start and End: written in UTC to the second; an all-day event runs from midnight of its
//     first day to midnight after its last in its time zone, and reads back with those dates;
//   - email addresses and phone numbers: read without surrounding white space;
//   - a birthday that is not a valid date, and an address without any part, are not written.
//
// Text, bodies included, is written and read verbatim (CR escaped so that CRLF survives). A
// field Exchange computed in a way this mapping does not reproduce would make the stored record
// differ from the next read of the item; the sync fields have none (TestWrittenAsRead checks
// results against reads of the simulator).
// Fields Exchange sets on its own (an event's organizer and UID, the item's LastModifiedTime)
// are not sync fields and are left as the command had them.

// writtenRecord returns the record a successful write of cmd left in item id.
func writtenRecord(cmd *tandemv1.WriteCommand, id ItemID) *tandemv1.Record {
	rec := cloneRecord(cmd.GetRecord())
	if held, ok := heldForm(rec); ok {
		rec = record.CopyFields(rec, held, record.SyncFields(record.KindOf(rec)))
	}
	rec.Id, rec.Version = id.ID, cmp.Or(id.ChangeKey, rec.GetVersion())
	if k := cmd.GetSyncKey(); k != "" {
		// Creates tag the item with the command's key, and so do updates that carry one.
		rec.SyncKey = k
	}
	return rec
}

// heldForm returns rec's content as a read of the item would return it: mapped to the XML a
// create sends and read back from it. Content that cannot be mapped as a whole (an update's
// partial event, without its timing) has only its enumerations normalised. It reports false
// for a record without content.
func heldForm(rec *tandemv1.Record) (*tandemv1.Record, bool) {
	holder := etree.NewElement("holder")
	holder.CreateAttr("xmlns:t", nsTypes)
	out := &tandemv1.Record{}
	switch body := rec.GetBody().(type) {
	case *tandemv1.Record_Contact:
		contactToXML(holder, body.Contact, "")
		out.Body = &tandemv1.Record_Contact{Contact: contactFromXML(firstChild(holder))}
	case *tandemv1.Record_Event:
		if err := eventToXML(holder, body.Event, ""); err != nil {
			ev := cloneRecord(rec).GetEvent()
			ev.Sensitivity = sensitivities[sensitivityName(ev.GetSensitivity())]
			ev.ShowAs = freeBusy[showAsName(ev.GetShowAs())]
			return &tandemv1.Record{Body: &tandemv1.Record_Event{Event: ev}}, true
		}
		out.Body = &tandemv1.Record_Event{Event: eventFromXML(firstChild(holder))}
	default:
		return nil, false
	}
	return out, true
}
