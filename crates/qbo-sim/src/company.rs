//! The per-company singletons `CompanyInfo` and `Preferences`: one fixed row each (`Id` "1"),
//! served by single read (`companyinfo/{realmId}`, `preferences`) and by query
//! (`SELECT * FROM CompanyInfo`), shaped like Intuit's reference samples for a US sandbox
//! company. Clients read them right after connecting (node-quickbooks `getCompanyInfo`,
//! python-quickbooks `CompanyInfo.get`, singer/hotglue taps).

use crate::data::{Dataset, Row};
use crate::time::{pacific_day, push_date, push_pacific_secs};

/// A per-company singleton entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Singleton {
    CompanyInfo,
    Preferences,
}

impl Singleton {
    const ALL: [Singleton; 2] = [Singleton::CompanyInfo, Singleton::Preferences];

    /// The QBO entity name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Singleton::CompanyInfo => "CompanyInfo",
            Singleton::Preferences => "Preferences",
        }
    }

    /// Case-insensitive entity name (REST paths use `companyinfo`, `preferences`).
    pub(crate) fn from_any_case(s: &str) -> Option<Singleton> {
        Singleton::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
    }

    /// The one row: created well before the generated data, last edited shortly before it.
    pub(crate) fn row(self, ds: &Dataset) -> Row {
        let created = ds.origin - 400 * 86_400 + 9 * 3600 + 12 * 60 + 34;
        let (updated, sync) = match self {
            Singleton::CompanyInfo => (ds.origin - 3 * 86_400 + 15 * 3600 + 2 * 60 + 11, 3),
            Singleton::Preferences => (ds.origin - 2 * 86_400 + 17 * 3600 + 45 * 60 + 7, 6),
        };
        Row {
            created,
            updated,
            sync,
            active: true,
            deleted: false,
            amount_delta_cents: 0,
        }
    }

    /// Appends the entity object `{…}`.
    pub(crate) fn render(self, out: &mut String, ds: &Dataset) {
        let row = self.row(ds);
        match self {
            Singleton::CompanyInfo => company_info(out, &row),
            Singleton::Preferences => preferences(out, &row),
        }
    }
}

/// `CompanyName` of the simulated company (Intuit names sandbox companies this way).
pub(crate) const COMPANY_NAME: &str = "Sandbox Company_US_1";

/// The address every sandbox company gets.
const COMPANY_ADDR: &str = "{\"Id\":\"1\",\"Line1\":\"123 Sierra Way\",\"City\":\"San Pablo\",\
     \"CountrySubDivisionCode\":\"CA\",\"PostalCode\":\"87999\",\"Lat\":\"36.6788345\",\
     \"Long\":\"-116.1484299\"}";

fn meta(out: &mut String, sync: u32, row: &Row) {
    out.push_str("\"domain\":\"QBO\",\"sparse\":false,\"Id\":\"1\",\"SyncToken\":\"");
    out.push_str(&sync.to_string());
    out.push_str("\",\"MetaData\":{\"CreateTime\":\"");
    push_pacific_secs(out, row.created);
    out.push_str("\",\"LastUpdatedTime\":\"");
    push_pacific_secs(out, row.updated);
    out.push_str("\"}");
}

fn company_info(out: &mut String, row: &Row) {
    out.push_str("{\"CompanyName\":\"");
    out.push_str(COMPANY_NAME);
    out.push_str("\",\"LegalName\":\"");
    out.push_str(COMPANY_NAME);
    out.push_str("\",\"CompanyAddr\":");
    out.push_str(COMPANY_ADDR);
    out.push_str(",\"CustomerCommunicationAddr\":");
    out.push_str(COMPANY_ADDR);
    out.push_str(",\"LegalAddr\":");
    out.push_str(COMPANY_ADDR);
    out.push_str(
        ",\"CustomerCommunicationEmailAddr\":{\"Address\":\"noreply@quickbooks.com\"},\
         \"PrimaryPhone\":{},\"CompanyStartDate\":\"",
    );
    push_date(out, pacific_day(row.created));
    out.push_str(
        "\",\"FiscalYearStartMonth\":\"January\",\"Country\":\"US\",\
         \"Email\":{\"Address\":\"noreply@quickbooks.com\"},\"WebAddr\":{},\
         \"SupportedLanguages\":\"en\",\"NameValue\":[\
         {\"Name\":\"NeoEnabled\",\"Value\":\"true\"},\
         {\"Name\":\"IndustryType\",\"Value\":\"Landscaping Services\"},\
         {\"Name\":\"IndustryCode\",\"Value\":\"561730\"},\
         {\"Name\":\"SubscriptionStatus\",\"Value\":\"PAID\"},\
         {\"Name\":\"OfferingSku\",\"Value\":\"QuickBooks Online Plus\"},\
         {\"Name\":\"PayrollFeature\",\"Value\":\"false\"},\
         {\"Name\":\"AccountantFeature\",\"Value\":\"false\"},\
         {\"Name\":\"IsQbdtMigrated\",\"Value\":\"false\"},\
         {\"Name\":\"MigrationDate\",\"Value\":\"\"},\
         {\"Name\":\"QBOIndustryType\",\"Value\":\"Landscaping Services\"},\
         {\"Name\":\"ItemCategoriesFeature\",\"Value\":\"true\"},\
         {\"Name\":\"AssignedTime\",\"Value\":\"",
    );
    push_pacific_secs(out, row.created);
    out.push_str("\"}],");
    meta(out, row.sync, row);
    out.push('}');
}

fn preferences(out: &mut String, row: &Row) {
    out.push_str(
        "{\"AccountingInfoPrefs\":{\"TrackDepartments\":false,\"DepartmentTerminology\":\"Location\",\
         \"ClassTrackingPerTxn\":false,\"ClassTrackingPerTxnLine\":false,\
         \"CustomerTerminology\":\"Customers\"},\
         \"ProductAndServicesPrefs\":{\"ForSales\":true,\"ForPurchase\":true,\
         \"QuantityWithPriceAndRate\":true,\"QuantityOnHand\":true},\
         \"SalesFormsPrefs\":{\"CustomField\":[{\"CustomField\":[\
         {\"Name\":\"SalesFormsPrefs.UseSalesCustom3\",\"Type\":\"BooleanType\",\"BooleanValue\":false},\
         {\"Name\":\"SalesFormsPrefs.UseSalesCustom2\",\"Type\":\"BooleanType\",\"BooleanValue\":false},\
         {\"Name\":\"SalesFormsPrefs.UseSalesCustom1\",\"Type\":\"BooleanType\",\"BooleanValue\":true}]},\
         {\"CustomField\":[\
         {\"Name\":\"SalesFormsPrefs.SalesCustomName1\",\"Type\":\"StringType\",\"StringValue\":\"Crew #\"}]}],\
         \"CustomTxnNumbers\":false,\"AllowDeposit\":true,\"AllowDiscount\":true,\
         \"DefaultDiscountAccount\":\"86\",\"AllowEstimates\":true,\
         \"ETransactionEnabledStatus\":\"NotApplicable\",\"ETransactionAttachPDF\":false,\
         \"ETransactionPaymentEnabled\":false,\"IPNSupportEnabled\":false,\
         \"AllowServiceDate\":false,\"AllowShipping\":false,\"DefaultTerms\":{\"value\":\"3\"},\
         \"DefaultCustomerMessage\":\"Thank you for your business and have a great day!\",\
         \"UsingProgressInvoicing\":false,\"UsingPriceLevels\":false},\
         \"EmailMessagesPrefs\":{\
         \"InvoiceMessage\":{\"Subject\":\"Invoice [Invoice No.] from Sandbox Company_US_1\",\
         \"Message\":\"Your invoice is attached.\"},\
         \"EstimateMessage\":{\"Subject\":\"Estimate [Estimate No.] from Sandbox Company_US_1\",\
         \"Message\":\"Please review the estimate below.\"},\
         \"SalesReceiptMessage\":{\"Subject\":\"Sales Receipt [Sales Receipt No.] from Sandbox Company_US_1\",\
         \"Message\":\"Your sales receipt is attached.\"},\
         \"StatementMessage\":{\"Subject\":\"Statement from Sandbox Company_US_1\",\
         \"Message\":\"Your statement is attached.\"}},\
         \"VendorAndPurchasesPrefs\":{\"TrackingByCustomer\":true,\"BillableExpenseTracking\":true,\
         \"POCustomField\":[{\"CustomField\":[\
         {\"Name\":\"PurchasePrefs.UsePurchaseCustom3\",\"Type\":\"BooleanType\",\"BooleanValue\":false},\
         {\"Name\":\"PurchasePrefs.UsePurchaseCustom1\",\"Type\":\"BooleanType\",\"BooleanValue\":false},\
         {\"Name\":\"PurchasePrefs.UsePurchaseCustom2\",\"Type\":\"BooleanType\",\"BooleanValue\":false}]}]},\
         \"TimeTrackingPrefs\":{\"UseServices\":true,\"BillCustomers\":true,\"ShowBillRateToAll\":false,\
         \"WorkWeekStartDate\":\"Monday\",\"MarkTimeEntriesBillable\":true},\
         \"TaxPrefs\":{\"UsingSalesTax\":true,\"PartnerTaxEnabled\":true},\
         \"CurrencyPrefs\":{\"MultiCurrencyEnabled\":false,\
         \"HomeCurrency\":{\"value\":\"USD\"}},\
         \"ReportPrefs\":{\"ReportBasis\":\"Accrual\",\"CalcAgingReportFromTxnDate\":false},\
         \"OtherPrefs\":{\"NameValue\":[\
         {\"Name\":\"SalesFormsPrefs.DefaultCustomerMessage\",\
         \"Value\":\"Thank you for your business and have a great day!\"},\
         {\"Name\":\"SalesFormsPrefs.DefaultItem\",\"Value\":\"1\"},\
         {\"Name\":\"DTXCopyMemo\",\"Value\":\"false\"},\
         {\"Name\":\"UncategorizedAssetAccountId\",\"Value\":\"32\"},\
         {\"Name\":\"UncategorizedIncomeAccountId\",\"Value\":\"30\"},\
         {\"Name\":\"UncategorizedExpenseAccountId\",\"Value\":\"31\"},\
         {\"Name\":\"SFCEnabled\",\"Value\":\"true\"},\
         {\"Name\":\"DataPartner\",\"Value\":\"false\"},\
         {\"Name\":\"Vendor1099Enabled\",\"Value\":\"true\"},\
         {\"Name\":\"TimeTrackingFeatureEnabled\",\"Value\":\"true\"},\
         {\"Name\":\"FDPEnabled\",\"Value\":\"false\"},\
         {\"Name\":\"ProjectsEnabled\",\"Value\":\"false\"},\
         {\"Name\":\"DateFormat\",\"Value\":\"Month Date Year separated by a slash\"},\
         {\"Name\":\"DateFormatMnemonic\",\"Value\":\"MMDDYYYY_SEP_SLASH\"},\
         {\"Name\":\"NumberFormat\",\"Value\":\"US Number Format\"},\
         {\"Name\":\"NumberFormatMnemonic\",\"Value\":\"US_NB\"},\
         {\"Name\":\"WarnDuplicateCheckNumber\",\"Value\":\"true\"},\
         {\"Name\":\"WarnDuplicateBillNumber\",\"Value\":\"false\"},\
         {\"Name\":\"WarnDuplicateJournalNumber\",\"Value\":\"false\"},\
         {\"Name\":\"UsingCustomerPONumber\",\"Value\":\"false\"}]},",
    );
    meta(out, row.sync, row);
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;

    #[test]
    fn singletons_render_valid_json() {
        let ds = Dataset::generate(&SimConfig {
            customers: 1,
            items: 1,
            invoices: 1,
            ..SimConfig::default()
        });
        for s in Singleton::ALL {
            let mut out = String::new();
            s.render(&mut out, &ds);
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["Id"], "1");
            assert_eq!(v["domain"], "QBO");
            assert!(v["MetaData"]["CreateTime"].as_str().unwrap() < "2026-01-01");
        }
        assert_eq!(
            Singleton::from_any_case("companyinfo"),
            Some(Singleton::CompanyInfo)
        );
        let mut out = String::new();
        Singleton::CompanyInfo.render(&mut out, &ds);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["CompanyName"], COMPANY_NAME);
        assert_eq!(v["CompanyStartDate"], "2024-11-27");
    }
}
