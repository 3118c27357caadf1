package ewssim

import (
	"slices"
	"strconv"
	"strings"
)

// Namespaces as Exchange uses them on the wire.
const (
	nsSOAP       = "http://schemas.xmlsoap.org/soap/envelope/"
	nsTypes      = "http://schemas.microsoft.com/exchange/services/2006/types"
	nsMessages   = "http://schemas.microsoft.com/exchange/services/2006/messages"
	nsErrors     = "http://schemas.microsoft.com/exchange/services/2006/errors"
	nsXSI        = "http://www.w3.org/2001/XMLSchema-instance"
	nsXSD        = "http://www.w3.org/2001/XMLSchema"
	nsAutodisc   = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
	nsWSA        = "http://www.w3.org/2005/08/addressing"
	nsPOXReq     = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	nsPOXResp    = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	nsPOXOutlook = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)

type itemKind uint8

const (
	kindContact itemKind = iota + 1
	kindCalendar
	kindMessage
)

func (k itemKind) element() string {
	switch k {
	case kindContact:
		return "Contact"
	case kindCalendar:
		return "CalendarItem"
	default:
		return "Message"
	}
}

func (k itemKind) defaultClass() string {
	switch k {
	case kindContact:
		return "IPM.Contact"
	case kindCalendar:
		return "IPM.Appointment"
	default:
		return "IPM.Note"
	}
}

// changeKeyPrefix is the first byte Exchange puts in change keys of this kind of object.
func (k itemKind) changeKeyPrefix() byte {
	switch k {
	case kindContact:
		return 0x11
	case kindCalendar:
		return 0x0f
	default:
		return 0x09
	}
}

// valueType is the XML schema type of a simple-typed property, used to reject values the schema
// would reject.
type valueType uint8

const (
	vtString valueType = iota
	vtBool
	vtInt
	vtDateTime
	vtComplex // not simple: has child elements
)

// propDef is one element of an item type's xs:sequence.
type propDef struct {
	name string
	vt   valueType
	// access says what a client may do with the property.
	access propAccess
}

type propAccess uint8

const (
	// accessOther: writable, kept verbatim in ItemBase.Other.
	accessOther propAccess = iota
	// accessModeled: writable, parsed into the item structs.
	accessModeled
	// accessReadOnly: computed by the server; setting it is ErrorInvalidPropertySet.
	accessReadOnly
	// accessUnsupported: valid EWS but not simulated; setting it is ErrorInvalidPropertySet.
	accessUnsupported
)

// itemTypeProps is the xs:sequence of ItemType in types.xsd, in order.
var itemTypeProps = []propDef{
	{"MimeContent", vtComplex, accessUnsupported}, {"ItemId", vtComplex, accessReadOnly},
	{"ParentFolderId", vtComplex, accessReadOnly}, {"ItemClass", vtString, accessModeled},
	{"Subject", vtString, accessModeled}, {"Sensitivity", vtString, accessModeled},
	{"Body", vtComplex, accessModeled}, {"Attachments", vtComplex, accessUnsupported},
	{"DateTimeReceived", vtDateTime, accessReadOnly}, {"Size", vtInt, accessReadOnly},
	{"Categories", vtComplex, accessModeled}, {"Importance", vtString, accessModeled},
	{"InReplyTo", vtString, accessOther}, {"IsSubmitted", vtBool, accessReadOnly},
	{"IsDraft", vtBool, accessReadOnly}, {"IsFromMe", vtBool, accessReadOnly},
	{"IsResend", vtBool, accessReadOnly}, {"IsUnmodified", vtBool, accessReadOnly},
	{"InternetMessageHeaders", vtComplex, accessReadOnly}, {"DateTimeSent", vtDateTime, accessReadOnly},
	{"DateTimeCreated", vtDateTime, accessReadOnly}, {"ResponseObjects", vtComplex, accessReadOnly},
	{"ReminderDueBy", vtDateTime, accessOther}, {"ReminderIsSet", vtBool, accessOther},
	{"ReminderNextTime", vtDateTime, accessOther}, {"ReminderMinutesBeforeStart", vtInt, accessOther},
	{"DisplayCc", vtString, accessReadOnly}, {"DisplayTo", vtString, accessReadOnly},
	{"DisplayBcc", vtString, accessReadOnly}, {"HasAttachments", vtBool, accessReadOnly},
	{"ExtendedProperty", vtComplex, accessModeled}, {"Culture", vtString, accessOther},
	{"EffectiveRights", vtComplex, accessReadOnly}, {"LastModifiedName", vtString, accessReadOnly},
	{"LastModifiedTime", vtDateTime, accessReadOnly}, {"IsAssociated", vtBool, accessReadOnly},
	{"WebClientReadFormQueryString", vtString, accessReadOnly}, {"WebClientEditFormQueryString", vtString, accessReadOnly},
	{"ConversationId", vtComplex, accessReadOnly}, {"UniqueBody", vtComplex, accessReadOnly},
	{"Flag", vtComplex, accessUnsupported}, {"StoreEntryId", vtString, accessReadOnly},
	{"InstanceKey", vtString, accessReadOnly}, {"NormalizedBody", vtComplex, accessReadOnly},
	{"EntityExtractionResult", vtComplex, accessReadOnly}, {"PolicyTag", vtComplex, accessUnsupported},
	{"ArchiveTag", vtComplex, accessUnsupported}, {"RetentionDate", vtDateTime, accessReadOnly},
	{"Preview", vtString, accessReadOnly}, {"RightsManagementLicenseData", vtComplex, accessReadOnly},
	{"PredictedActionReasons", vtComplex, accessReadOnly}, {"IsClutter", vtBool, accessReadOnly},
	{"BlockStatus", vtBool, accessReadOnly}, {"HasBlockedImages", vtBool, accessReadOnly},
	{"TextBody", vtComplex, accessReadOnly}, {"IconIndex", vtString, accessReadOnly},
	{"SearchKey", vtString, accessReadOnly}, {"SortKey", vtInt, accessReadOnly},
	{"Hashtags", vtComplex, accessUnsupported}, {"Mentions", vtComplex, accessUnsupported},
	{"MentionedMe", vtBool, accessReadOnly}, {"MentionsPreview", vtComplex, accessReadOnly},
	{"MentionsEx", vtComplex, accessUnsupported}, {"AppliedHashtags", vtComplex, accessUnsupported},
	{"AppliedHashtagsPreview", vtComplex, accessReadOnly}, {"Likes", vtComplex, accessUnsupported},
	{"LikesPreview", vtComplex, accessReadOnly}, {"PendingSocialActivityTagIds", vtComplex, accessUnsupported},
	{"AtAllMention", vtBool, accessReadOnly}, {"CanDelete", vtBool, accessReadOnly},
	{"InferenceClassification", vtString, accessReadOnly},
}

// contactProps is the extension sequence of ContactItemType.
var contactProps = []propDef{
	{"FileAs", vtString, accessModeled}, {"FileAsMapping", vtString, accessOther},
	{"DisplayName", vtString, accessModeled}, {"GivenName", vtString, accessModeled},
	{"Initials", vtString, accessOther}, {"MiddleName", vtString, accessModeled},
	{"Nickname", vtString, accessOther}, {"CompleteName", vtComplex, accessReadOnly},
	{"CompanyName", vtString, accessModeled}, {"EmailAddresses", vtComplex, accessModeled},
	{"AbchEmailAddresses", vtComplex, accessUnsupported}, {"PhysicalAddresses", vtComplex, accessModeled},
	{"PhoneNumbers", vtComplex, accessModeled}, {"AssistantName", vtString, accessOther},
	{"Birthday", vtDateTime, accessModeled}, {"BusinessHomePage", vtString, accessOther},
	{"Children", vtComplex, accessUnsupported}, {"Companies", vtComplex, accessUnsupported},
	{"ContactSource", vtString, accessReadOnly}, {"Department", vtString, accessModeled},
	{"Generation", vtString, accessOther}, {"ImAddresses", vtComplex, accessUnsupported},
	{"JobTitle", vtString, accessModeled}, {"Manager", vtString, accessOther},
	{"Mileage", vtString, accessOther}, {"OfficeLocation", vtString, accessOther},
	{"PostalAddressIndex", vtString, accessOther}, {"Profession", vtString, accessOther},
	{"SpouseName", vtString, accessOther}, {"Surname", vtString, accessModeled},
	{"WeddingAnniversary", vtDateTime, accessOther}, {"HasPicture", vtBool, accessReadOnly},
	{"PhoneticFullName", vtString, accessOther}, {"PhoneticFirstName", vtString, accessOther},
	{"PhoneticLastName", vtString, accessOther}, {"Alias", vtString, accessReadOnly},
	{"Notes", vtString, accessOther}, {"Photo", vtString, accessUnsupported},
	{"UserSMIMECertificate", vtComplex, accessUnsupported}, {"MSExchangeCertificate", vtComplex, accessUnsupported},
	{"DirectoryId", vtString, accessReadOnly}, {"ManagerMailbox", vtComplex, accessReadOnly},
	{"DirectReports", vtComplex, accessReadOnly}, {"AccountName", vtString, accessOther},
	{"IsAutoUpdateDisabled", vtBool, accessOther}, {"IsMessengerEnabled", vtBool, accessOther},
	{"Comment", vtString, accessOther}, {"ContactShortId", vtInt, accessOther},
	{"ContactType", vtString, accessOther}, {"Gender", vtString, accessOther},
	{"IsHidden", vtBool, accessOther}, {"ObjectId", vtString, accessOther},
	{"PassportId", vtInt, accessOther}, {"IsPrivate", vtBool, accessOther},
	{"SourceId", vtString, accessOther}, {"TrustLevel", vtInt, accessOther},
	{"CreatedBy", vtString, accessOther}, {"Urls", vtComplex, accessUnsupported},
	{"Cid", vtInt, accessOther}, {"SkypeAuthCertificate", vtString, accessOther},
	{"SkypeContext", vtString, accessOther}, {"SkypeId", vtString, accessOther},
	{"SkypeRelationship", vtString, accessOther}, {"YomiNickname", vtString, accessOther},
	{"XboxLiveTag", vtString, accessOther}, {"InviteFree", vtBool, accessOther},
	{"HidePresenceAndProfile", vtBool, accessOther}, {"IsPendingOutbound", vtBool, accessOther},
	{"SupportGroupFeeds", vtBool, accessOther}, {"UserTileHash", vtString, accessOther},
	{"UnifiedInbox", vtBool, accessOther}, {"Mris", vtComplex, accessUnsupported},
	{"Wlid", vtString, accessOther}, {"AbchContactId", vtString, accessOther},
	{"NotInBirthdayCalendar", vtBool, accessOther}, {"ShellContactType", vtString, accessOther},
	{"ImMri", vtString, accessOther}, {"PresenceTrustLevel", vtInt, accessOther},
	{"OtherMri", vtString, accessOther}, {"ProfileLastChanged", vtString, accessOther},
	{"MobileIMEnabled", vtBool, accessOther}, {"PartnerNetworkProfilePhotoUrl", vtString, accessOther},
	{"PartnerNetworkThumbnailPhotoUrl", vtString, accessOther}, {"PersonId", vtString, accessReadOnly},
	{"ConversationGuid", vtString, accessReadOnly},
}

// calendarProps is the extension sequence of CalendarItemType.
var calendarProps = []propDef{
	{"UID", vtString, accessModeled}, {"RecurrenceId", vtDateTime, accessReadOnly},
	{"DateTimeStamp", vtDateTime, accessReadOnly}, {"Start", vtDateTime, accessModeled},
	{"End", vtDateTime, accessModeled}, {"OriginalStart", vtDateTime, accessReadOnly},
	{"IsAllDayEvent", vtBool, accessModeled}, {"LegacyFreeBusyStatus", vtString, accessModeled},
	{"Location", vtString, accessModeled}, {"When", vtString, accessOther},
	{"IsMeeting", vtBool, accessReadOnly}, {"IsCancelled", vtBool, accessReadOnly},
	{"IsRecurring", vtBool, accessReadOnly}, {"MeetingRequestWasSent", vtBool, accessReadOnly},
	{"IsResponseRequested", vtBool, accessOther}, {"CalendarItemType", vtString, accessReadOnly},
	{"MyResponseType", vtString, accessReadOnly}, {"Organizer", vtComplex, accessReadOnly},
	{"RequiredAttendees", vtComplex, accessModeled}, {"OptionalAttendees", vtComplex, accessModeled},
	{"Resources", vtComplex, accessModeled}, {"InboxReminders", vtComplex, accessUnsupported},
	{"ConflictingMeetingCount", vtInt, accessReadOnly}, {"AdjacentMeetingCount", vtInt, accessReadOnly},
	{"ConflictingMeetings", vtComplex, accessReadOnly}, {"AdjacentMeetings", vtComplex, accessReadOnly},
	{"Duration", vtString, accessReadOnly}, {"TimeZone", vtString, accessReadOnly},
	{"AppointmentReplyTime", vtDateTime, accessReadOnly}, {"AppointmentSequenceNumber", vtInt, accessReadOnly},
	{"AppointmentState", vtInt, accessReadOnly}, {"Recurrence", vtComplex, accessModeled},
	{"FirstOccurrence", vtComplex, accessReadOnly}, {"LastOccurrence", vtComplex, accessReadOnly},
	{"ModifiedOccurrences", vtComplex, accessReadOnly}, {"DeletedOccurrences", vtComplex, accessReadOnly},
	{"MeetingTimeZone", vtComplex, accessUnsupported}, {"StartTimeZone", vtComplex, accessModeled},
	{"EndTimeZone", vtComplex, accessModeled}, {"ConferenceType", vtInt, accessOther},
	{"AllowNewTimeProposal", vtBool, accessOther}, {"IsOnlineMeeting", vtBool, accessOther},
	{"MeetingWorkspaceUrl", vtString, accessOther}, {"NetShowUrl", vtString, accessOther},
	{"EnhancedLocation", vtComplex, accessUnsupported}, {"StartWallClock", vtDateTime, accessReadOnly},
	{"EndWallClock", vtDateTime, accessReadOnly}, {"StartTimeZoneId", vtString, accessOther},
	{"EndTimeZoneId", vtString, accessOther}, {"IntendedFreeBusyStatus", vtString, accessOther},
	{"JoinOnlineMeetingUrl", vtString, accessReadOnly}, {"OnlineMeetingSettings", vtComplex, accessUnsupported},
	{"IsOrganizer", vtBool, accessReadOnly}, {"CalendarActivityData", vtComplex, accessUnsupported},
	{"DoNotForwardMeeting", vtBool, accessOther},
}

// messageProps is the extension sequence of MessageType.
var messageProps = []propDef{
	{"Sender", vtComplex, accessUnsupported}, {"ToRecipients", vtComplex, accessUnsupported},
	{"CcRecipients", vtComplex, accessUnsupported}, {"BccRecipients", vtComplex, accessUnsupported},
	{"IsReadReceiptRequested", vtBool, accessOther}, {"IsDeliveryReceiptRequested", vtBool, accessOther},
	{"ConversationIndex", vtString, accessReadOnly}, {"ConversationTopic", vtString, accessReadOnly},
	{"From", vtComplex, accessUnsupported}, {"InternetMessageId", vtString, accessOther},
	{"IsRead", vtBool, accessModeled}, {"IsResponseRequested", vtBool, accessOther},
	{"References", vtString, accessOther}, {"ReplyTo", vtComplex, accessUnsupported},
	{"ReceivedBy", vtComplex, accessReadOnly}, {"ReceivedRepresenting", vtComplex, accessReadOnly},
	{"ApprovalRequestData", vtComplex, accessReadOnly}, {"VotingInformation", vtComplex, accessReadOnly},
	{"ReminderMessageData", vtComplex, accessReadOnly}, {"MessageSafety", vtComplex, accessReadOnly},
	{"SenderSMTPAddress", vtComplex, accessReadOnly}, {"MailboxGuids", vtComplex, accessReadOnly},
	{"PublishedCalendarItemIcs", vtString, accessReadOnly}, {"PublishedCalendarItemName", vtString, accessReadOnly},
}

// kindSchema is the full property order of one item kind with lookups by element name and by
// FieldURI.
type kindSchema struct {
	kind  itemKind
	props []propDef
	index map[string]int
	// uris maps an unindexed FieldURI ("item:Subject", "contacts:GivenName") to its element.
	uris map[string]string
}

var schemas = func() map[itemKind]*kindSchema {
	build := func(k itemKind, prefix string, ext []propDef) *kindSchema {
		s := &kindSchema{kind: k, props: slices.Concat(itemTypeProps, ext), index: map[string]int{}, uris: map[string]string{}}
		for i, p := range s.props {
			s.index[p.name] = i
			if i < len(itemTypeProps) {
				s.uris["item:"+p.name] = p.name
			} else {
				s.uris[prefix+":"+p.name] = p.name
			}
		}
		return s
	}
	m := map[itemKind]*kindSchema{
		kindContact:  build(kindContact, "contacts", contactProps),
		kindCalendar: build(kindCalendar, "calendar", calendarProps),
		kindMessage:  build(kindMessage, "message", messageProps),
	}
	return m
}()

func (s *kindSchema) prop(name string) (propDef, bool) {
	i, ok := s.index[name]
	if !ok {
		return propDef{}, false
	}
	return s.props[i], true
}

// elementForURI maps an unindexed FieldURI to the element it names for this kind, if any.
func (s *kindSchema) elementForURI(uri string) (string, bool) {
	e, ok := s.uris[uri]
	return e, ok
}

// knownURI reports whether uri is a FieldURI any item kind understands.
func knownItemURI(uri string) bool {
	for _, s := range schemas {
		if _, ok := s.uris[uri]; ok {
			return true
		}
	}
	return false
}

// heavyProps are the properties Exchange returns from GetItem only, never from FindItem or
// SyncFolderItems.
var heavyProps = map[string]bool{
	"MimeContent": true, "Body": true, "Attachments": true, "UniqueBody": true, "NormalizedBody": true,
	"TextBody": true, "RequiredAttendees": true, "OptionalAttendees": true, "Resources": true,
	"Recurrence": true, "ModifiedOccurrences": true, "DeletedOccurrences": true,
	"FirstOccurrence": true, "LastOccurrence": true, "ConflictingMeetings": true, "AdjacentMeetings": true,
}

// Enumerations from types.xsd that the simulator checks on input.
var (
	sensitivities     = []string{"Normal", "Personal", "Private", "Confidential"}
	importances       = []string{"Low", "Normal", "High"}
	freeBusyStatuses  = []string{"Free", "Tentative", "Busy", "OOF", "WorkingElsewhere", "NoData"}
	responseTypes     = []string{"Unknown", "Organizer", "Tentative", "Accept", "Decline", "NoResponseReceived"}
	emailKeys         = []string{"EmailAddress1", "EmailAddress2", "EmailAddress3"}
	addressKeys       = []string{"Home", "Business", "Other"}
	addressParts      = []string{"Street", "City", "State", "CountryOrRegion", "PostalCode"}
	daysOfWeek        = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Day", "Weekday", "WeekendDay"}
	dayOfWeekIndexes  = []string{"First", "Second", "Third", "Fourth", "Last"}
	monthNames        = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
	mapiPropertyTypes = []string{
		"ApplicationTime", "ApplicationTimeArray", "Binary", "BinaryArray", "Boolean", "CLSID", "CLSIDArray",
		"Currency", "CurrencyArray", "Double", "DoubleArray", "Error", "Float", "FloatArray", "Integer",
		"IntegerArray", "Long", "LongArray", "Null", "Object", "ObjectArray", "Short", "ShortArray",
		"SystemTime", "SystemTimeArray", "String", "StringArray",
	}
	distinguishedPropertySets = []string{
		"Meeting", "Appointment", "Common", "PublicStrings", "Address", "InternetHeaders",
		"CalendarAssistant", "UnifiedMessaging", "Task", "Sharing",
	}
	phoneKeys = []string{
		"AssistantPhone", "BusinessFax", "BusinessPhone", "BusinessPhone2", "Callback", "CarPhone",
		"CompanyMainPhone", "HomeFax", "HomePhone", "HomePhone2", "Isdn", "MobilePhone", "OtherFax",
		"OtherTelephone", "Pager", "PrimaryPhone", "RadioPhone", "Telex", "TtyTddPhone", "BusinessMobile",
		"IPPhone", "Mms", "Msn",
	}
	// distinguishedFolderNames is DistinguishedFolderIdNameType: valid ids in requests, even
	// though the simulator only creates some of these folders.
	distinguishedFolderNames = []string{
		"calendar", "contacts", "deleteditems", "drafts", "inbox", "journal", "notes", "outbox", "sentitems",
		"tasks", "msgfolderroot", "publicfoldersroot", "root", "junkemail", "searchfolders", "voicemail",
		"recoverableitemsroot", "recoverableitemsdeletions", "recoverableitemsversions", "recoverableitemspurges",
		"recoverableitemsdiscoveryholds", "archiveroot", "archivemsgfolderroot", "archivedeleteditems",
		"archiveinbox", "archiverecoverableitemsroot", "archiverecoverableitemsdeletions",
		"archiverecoverableitemsversions", "archiverecoverableitemspurges", "archiverecoverableitemsdiscoveryholds",
		"syncissues", "conflicts", "localfailures", "serverfailures", "recipientcache", "quickcontacts",
		"conversationhistory", "adminauditlogs", "todosearch", "mycontacts", "directory", "imcontactlist",
		"peopleconnect", "favorites", "mecontact", "personmetadata", "teamspaceactivity", "teamspacemessaging",
		"teamspaceworkitems", "scheduled", "orionnotes", "tagitems", "alltaggeditems", "allcategorizeditems",
		"externalcontacts", "teamchat", "teamchathistory", "yammerdata", "yammerroot", "yammerinbound",
		"yammeroutbound", "yammerfeeds", "kaizaladata", "messageingestion", "onedriveroot", "onedriverecylebin",
		"onedrivesystem", "onedrivevolume", "important", "starred", "archive",
	}
)

// dictionaryURIs maps the IndexedFieldURI values the simulator supports to their dictionary
// element and, for physical addresses, the part of the entry they address.
var dictionaryURIs = map[string]struct{ element, part string }{
	"contacts:EmailAddress":                    {"EmailAddresses", ""},
	"contacts:PhoneNumber":                     {"PhoneNumbers", ""},
	"contacts:PhysicalAddress:Street":          {"PhysicalAddresses", "Street"},
	"contacts:PhysicalAddress:City":            {"PhysicalAddresses", "City"},
	"contacts:PhysicalAddress:State":           {"PhysicalAddresses", "State"},
	"contacts:PhysicalAddress:CountryOrRegion": {"PhysicalAddresses", "CountryOrRegion"},
	"contacts:PhysicalAddress:PostalCode":      {"PhysicalAddresses", "PostalCode"},
}

// dictionaryKeys returns the valid FieldIndex values of a dictionary element.
func dictionaryKeys(element string) []string {
	switch element {
	case "EmailAddresses":
		return emailKeys
	case "PhoneNumbers":
		return phoneKeys
	default:
		return addressKeys
	}
}

// folderFieldURIs are the folder: FieldURIs the simulator understands, with their element.
var folderFieldURIs = map[string]string{
	"folder:FolderId": "FolderId", "folder:ParentFolderId": "ParentFolderId", "folder:DisplayName": "DisplayName",
	"folder:UnreadCount": "UnreadCount", "folder:TotalCount": "TotalCount", "folder:ChildFolderCount": "ChildFolderCount",
	"folder:FolderClass": "FolderClass", "folder:EffectiveRights": "EffectiveRights",
	"folder:DistinguishedFolderId": "DistinguishedFolderId",
}

func normalizeTag(tag string) string {
	if tag == "" {
		return ""
	}
	t := strings.ToLower(strings.TrimSpace(tag))
	var n uint64
	var err error
	if strings.HasPrefix(t, "0x") {
		n, err = strconv.ParseUint(t[2:], 16, 16)
	} else {
		n, err = strconv.ParseUint(t, 10, 16)
	}
	if err != nil {
		return t
	}
	return "0x" + strconv.FormatUint(n, 16)
}
