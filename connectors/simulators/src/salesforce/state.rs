//! The deep-copy view of the org that tests and `/__sim/state` get: typed records,
//! live and deleted, with datetimes in the REST format.

use serde::{Deserialize, Serialize};

use super::org::Org;
use super::schema::{ObjType, Val};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SfLead {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub email: Option<String>,
    pub website: Option<String>,
    pub country: Option<String>,
    pub state: Option<String>,
    pub status: Option<String>,
    pub lead_source: Option<String>,
    pub owner_id: String,
    pub is_converted: bool,
    pub converted_account_id: Option<String>,
    pub converted_contact_id: Option<String>,
    pub converted_date: Option<String>,
    pub master_record_id: Option<String>,
    pub is_deleted: bool,
    pub routing_locked: bool,
    pub created_date: String,
    pub last_modified_date: String,
    pub system_modstamp: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SfContact {
    pub id: String,
    pub account_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub mailing_country: Option<String>,
    pub owner_id: String,
    pub master_record_id: Option<String>,
    pub is_deleted: bool,
    pub system_modstamp: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SfAccount {
    pub id: String,
    pub name: Option<String>,
    pub parent_id: Option<String>,
    pub website: Option<String>,
    pub billing_country: Option<String>,
    pub billing_state: Option<String>,
    pub industry: Option<String>,
    pub account_type: Option<String>,
    pub number_of_employees: Option<i64>,
    pub owner_id: String,
    pub master_record_id: Option<String>,
    pub is_deleted: bool,
    pub system_modstamp: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SfUser {
    pub id: String,
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub is_active: bool,
    pub user_type: Option<String>,
    pub time_zone_sid_key: Option<String>,
    pub country: Option<String>,
    pub manager_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SfQueue {
    pub id: String,
    pub name: Option<String>,
    pub developer_name: Option<String>,
    /// `Queue`, or `Regular` for a public group.
    pub group_type: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SfQueueSobject {
    pub id: String,
    pub queue_id: String,
    pub sobject_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SfGroupMember {
    pub id: String,
    pub group_id: String,
    pub user_or_group_id: String,
}

/// Every record of the org, in id order of creation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SalesforceState {
    pub org_id: String,
    /// The user API sessions run as.
    pub api_user_id: String,
    pub leads: Vec<SfLead>,
    pub contacts: Vec<SfContact>,
    pub accounts: Vec<SfAccount>,
    pub users: Vec<SfUser>,
    /// Groups: queues and public groups (see `group_type`).
    pub groups: Vec<SfQueue>,
    pub queue_sobjects: Vec<SfQueueSobject>,
    pub group_members: Vec<SfGroupMember>,
}

struct Fields<'a> {
    obj: ObjType,
    vals: &'a [Val],
}

impl Fields<'_> {
    fn s(&self, name: &str) -> Option<String> {
        self.vals[self.obj.idx(name)].to_text()
    }
    fn req(&self, name: &str) -> String {
        self.s(name).unwrap_or_default()
    }
    fn b(&self, name: &str) -> bool {
        self.vals[self.obj.idx(name)].as_bool()
    }
}

/// Copies the org (committed versions, including those not yet visible to queries).
pub(crate) fn snapshot(org: &Org) -> SalesforceState {
    let rows = |obj: ObjType| {
        org.table(obj)
            .rows
            .iter()
            .map(move |r| Fields { obj, vals: &r.vals })
    };
    SalesforceState {
        org_id: org.org_id.clone(),
        api_user_id: org.api_user_id.clone(),
        leads: rows(ObjType::Lead)
            .map(|f| SfLead {
                id: f.req("Id"),
                first_name: f.s("FirstName"),
                last_name: f.s("LastName"),
                company: f.s("Company"),
                email: f.s("Email"),
                website: f.s("Website"),
                country: f.s("Country"),
                state: f.s("State"),
                status: f.s("Status"),
                lead_source: f.s("LeadSource"),
                owner_id: f.req("OwnerId"),
                is_converted: f.b("IsConverted"),
                converted_account_id: f.s("ConvertedAccountId"),
                converted_contact_id: f.s("ConvertedContactId"),
                converted_date: f.s("ConvertedDate"),
                master_record_id: f.s("MasterRecordId"),
                is_deleted: f.b("IsDeleted"),
                routing_locked: f.b("Routing_Locked__c"),
                created_date: f.req("CreatedDate"),
                last_modified_date: f.req("LastModifiedDate"),
                system_modstamp: f.req("SystemModstamp"),
            })
            .collect(),
        contacts: rows(ObjType::Contact)
            .map(|f| SfContact {
                id: f.req("Id"),
                account_id: f.s("AccountId"),
                first_name: f.s("FirstName"),
                last_name: f.s("LastName"),
                email: f.s("Email"),
                mailing_country: f.s("MailingCountry"),
                owner_id: f.req("OwnerId"),
                master_record_id: f.s("MasterRecordId"),
                is_deleted: f.b("IsDeleted"),
                system_modstamp: f.req("SystemModstamp"),
            })
            .collect(),
        accounts: rows(ObjType::Account)
            .map(|f| SfAccount {
                id: f.req("Id"),
                name: f.s("Name"),
                parent_id: f.s("ParentId"),
                website: f.s("Website"),
                billing_country: f.s("BillingCountry"),
                billing_state: f.s("BillingState"),
                industry: f.s("Industry"),
                account_type: f.s("Type"),
                number_of_employees: match f.vals[ObjType::Account.idx("NumberOfEmployees")] {
                    Val::Int(n) => Some(n),
                    _ => None,
                },
                owner_id: f.req("OwnerId"),
                master_record_id: f.s("MasterRecordId"),
                is_deleted: f.b("IsDeleted"),
                system_modstamp: f.req("SystemModstamp"),
            })
            .collect(),
        users: rows(ObjType::User)
            .map(|f| SfUser {
                id: f.req("Id"),
                username: f.req("Username"),
                name: f.s("Name"),
                email: f.s("Email"),
                is_active: f.b("IsActive"),
                user_type: f.s("UserType"),
                time_zone_sid_key: f.s("TimeZoneSidKey"),
                country: f.s("Country"),
                manager_id: f.s("ManagerId"),
            })
            .collect(),
        groups: rows(ObjType::Group)
            .map(|f| SfQueue {
                id: f.req("Id"),
                name: f.s("Name"),
                developer_name: f.s("DeveloperName"),
                group_type: f.s("Type"),
                email: f.s("Email"),
            })
            .collect(),
        queue_sobjects: rows(ObjType::QueueSobject)
            .map(|f| SfQueueSobject {
                id: f.req("Id"),
                queue_id: f.req("QueueId"),
                sobject_type: f.req("SobjectType"),
            })
            .collect(),
        group_members: rows(ObjType::GroupMember)
            .map(|f| SfGroupMember {
                id: f.req("Id"),
                group_id: f.req("GroupId"),
                user_or_group_id: f.req("UserOrGroupId"),
            })
            .collect(),
    }
}
