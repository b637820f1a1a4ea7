-- The Trial Balance computed from the transactions in `raw` (issue 16, "Reconciled"): the
-- double-entry postings of every transaction entity, read from the JSON QuickBooks returned,
-- and the Trial Balance per basis (Accrual, Cash) as of any day. `qbo-backfill verify reports`
-- compares it, month by month and account by account, with the TrialBalance QuickBooks
-- answered (raw.qb_reports / raw.qb_report_rows); analysts use the same numbers.
--
-- Objects:
--   raw.qb_default_accounts      per company, the accounts QuickBooks uses when a transaction
--                                names none: Accounts Receivable, Accounts Payable, Undeposited
--                                Funds, Retained Earnings (the lowest id of that type/subtype,
--                                active first).
--   raw.qb_posting_transactions  the live (not deleted) rows of the 12 transaction tables, with
--                                txn_type, txn_date, MetaData.LastUpdatedTime and load time.
--   raw.qb_sales_lines           the income lines of Invoice, SalesReceipt, RefundReceipt and
--                                CreditMemo: a SalesItemLineDetail posts to its item's
--                                IncomeAccountRef (raw.qb_items), a DiscountLineDetail to its
--                                DiscountAccountRef (negative amount). `amount` is income.
--   raw.qb_expense_lines         the expense lines of Bill, VendorCredit and Purchase:
--                                AccountBasedExpenseLineDetail.AccountRef, or for
--                                ItemBasedExpenseLineDetail the item's AssetAccountRef
--                                (Inventory items) or ExpenseAccountRef. `amount` is expense.
--   raw.qb_journal_lines         one row per posting: realm_id, basis ('Accrual' or 'Cash'),
--                                txn_type, txn_id, txn_date, account_id, amount (debit > 0,
--                                credit < 0), last_updated_time, ingested_at_utc.
--   raw.qb_trial_balance(basis, as_of)  the Trial Balance as of a day (see below).
--   raw.qb_trial_balance_accrual, raw.qb_trial_balance_cash
--                                the Trial Balance as of every month end (column as_of) from
--                                the first month with a posting to the current month.
--
-- Posting rules (accrual basis; A/R, A/P and Undeposited Funds are the transaction's own
-- ARAccountRef / APAccountRef / DepositToAccountRef when present, else the defaults above):
--   Invoice        debit A/R TotalAmt; credit each sales line's income account
--   Payment        debit DepositToAccountRef TotalAmt; credit A/R TotalAmt
--   SalesReceipt   debit DepositToAccountRef TotalAmt; credit each sales line's income
--   RefundReceipt  debit each sales line's income; credit DepositToAccountRef TotalAmt
--   CreditMemo     debit each sales line's income; credit A/R TotalAmt
--   Bill           debit each expense line's account; credit APAccountRef TotalAmt
--   BillPayment    debit A/P TotalAmt; credit CheckPayment.BankAccountRef or
--                  CreditCardPayment.CCAccountRef TotalAmt
--   VendorCredit   debit APAccountRef TotalAmt; credit each expense line's account
--   Purchase       debit each expense line's account; credit AccountRef TotalAmt (both
--                  reversed when Credit = true: a card refund)
--   Deposit        debit DepositToAccountRef TotalAmt and CashBack.AccountRef CashBack.Amount;
--                  credit each line's DepositLineDetail.AccountRef, or Undeposited Funds for a
--                  line that deposits a linked payment or receipt (LinkedTxn)
--   Transfer       debit ToAccountRef Amount; credit FromAccountRef Amount
--   JournalEntry   each line's JournalEntryLineDetail.AccountRef, debit or credit per
--                  PostingType
-- Cash basis: income and expense count when money moves. Invoice, CreditMemo, Bill and
-- VendorCredit post nothing. A Payment credits, instead of A/R, the income accounts of each
-- Invoice it pays (Line[].LinkedTxn with TxnType = 'Invoice'): each of the invoice's sales
-- lines times the amount paid over the invoice's TotalAmt, rounded to the cent; what it does
-- not apply to a known invoice credits A/R. A BillPayment likewise debits the expense
-- accounts of each Bill it pays, the rest A/P. Everything else posts as under accrual.
--
-- Trial Balance as of day D (QuickBooks' TrialBalance with end_date D): for balance-sheet
-- accounts (Classification Asset, Liability, Equity, or an account not in raw.qb_accounts)
-- every posting up to D; for profit-and-loss accounts (Revenue, Expense) the postings of the
-- fiscal year to date, the fiscal year being the calendar year (Jan 1 to D); the P&L of earlier
-- years is added to Retained Earnings (a row without account_id named 'Retained Earnings' when
-- the company has no such account). Accounts whose balance is zero are left out. `balance` is
-- debit minus credit; `debit` / `credit` show it on its side, as the report does.
--
-- Deleted transactions (deleted_at_utc set, by change data capture or verify) post nothing;
-- edited ones post their current amounts; TxnDate is the posting day.
--
-- What is NOT modelled (a company using these sees differences on the accounts they touch):
--   * sales tax: TxnTaxDetail (Sales Tax Payable); A/R, deposits and payments use TotalAmt,
--     which includes tax, so a taxed document leaves its tax unposted on the other side;
--   * cost of goods sold and inventory on sales (QuickBooks posts COGS / Inventory Asset for
--     Inventory items sold), inventory quantity adjustments;
--   * GroupLineDetail (bundles) and lines of other detail types than those named above;
--     a sales line whose item is not in raw.qb_items posts to no account (account_id NULL);
--   * Payment lines applied to credit memos, journal entries or deposits (only invoices are
--     followed under cash basis), and cash basis for credit memos and vendor credits;
--   * multi-currency (amounts are in the transaction's currency, no exchange rate),
--     fiscal years not starting in January, Estimate / PurchaseOrder / TimeActivity (which post
--     nothing in QuickBooks either), and entities not loaded into raw (e.g. SalesTaxPayment,
--     InventoryAdjustment).

-- The raw tables the views read. The application creates the raw table of every catalog entity
-- on start (shaped like raw.qb_customers); create the ones the views need here so that they
-- can be defined. Same shape, so the application's check finds them complete.
CREATE TABLE IF NOT EXISTS raw.qb_accounts (LIKE raw.qb_customers INCLUDING ALL);
CREATE TABLE IF NOT EXISTS raw.qb_payments (LIKE raw.qb_customers INCLUDING ALL);
CREATE TABLE IF NOT EXISTS raw.qb_sales_receipts (LIKE raw.qb_customers INCLUDING ALL);
CREATE TABLE IF NOT EXISTS raw.qb_refund_receipts (LIKE raw.qb_customers INCLUDING ALL);
CREATE TABLE IF NOT EXISTS raw.qb_credit_memos (LIKE raw.qb_customers INCLUDING ALL);
CREATE TABLE IF NOT EXISTS raw.qb_bills (LIKE raw.qb_customers INCLUDING ALL);
CREATE TABLE IF NOT EXISTS raw.qb_bill_payments (LIKE raw.qb_customers INCLUDING ALL);
CREATE TABLE IF NOT EXISTS raw.qb_vendor_credits (LIKE raw.qb_customers INCLUDING ALL);
CREATE TABLE IF NOT EXISTS raw.qb_purchases (LIKE raw.qb_customers INCLUDING ALL);
CREATE TABLE IF NOT EXISTS raw.qb_deposits (LIKE raw.qb_customers INCLUDING ALL);
CREATE TABLE IF NOT EXISTS raw.qb_transfers (LIKE raw.qb_customers INCLUDING ALL);
CREATE TABLE IF NOT EXISTS raw.qb_journal_entries (LIKE raw.qb_customers INCLUDING ALL);

-- `Line` of a payload as an array (an absent or malformed one as none).
CREATE FUNCTION raw.qb_json_array(value jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN jsonb_typeof(value) = 'array' THEN value ELSE '[]'::jsonb END $$;

-- A JSON amount as numeric (NULL when absent or not a number).
CREATE FUNCTION raw.qb_money(value jsonb) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN jsonb_typeof(value) = 'number' THEN value::text::numeric
                      WHEN jsonb_typeof(value) = 'string' AND value #>> '{}' ~ '^-?[0-9]+(\.[0-9]+)?$'
                          THEN (value #>> '{}')::numeric END $$;

CREATE VIEW raw.qb_default_accounts AS
SELECT realm_id,
       (array_agg(id ORDER BY inactive, length(id), id)
            FILTER (WHERE account_type = 'Accounts Receivable'))[1] AS receivable_account_id,
       (array_agg(id ORDER BY inactive, length(id), id)
            FILTER (WHERE account_type = 'Accounts Payable'))[1] AS payable_account_id,
       (array_agg(id ORDER BY inactive, length(id), id)
            FILTER (WHERE sub_type = 'UndepositedFunds'))[1] AS undeposited_funds_account_id,
       (array_agg(id ORDER BY inactive, length(id), id)
            FILTER (WHERE sub_type = 'RetainedEarnings'))[1] AS retained_earnings_account_id
FROM (SELECT realm_id, id, payload ->> 'AccountType' AS account_type,
             payload ->> 'AccountSubType' AS sub_type,
             coalesce(payload ->> 'Active', 'true') = 'false' AS inactive
      FROM raw.qb_accounts WHERE deleted_at_utc IS NULL) a
GROUP BY realm_id;

COMMENT ON VIEW raw.qb_default_accounts IS
    'Per company, the accounts QuickBooks posts to when a transaction names none: A/R, A/P, Undeposited Funds, and Retained Earnings (lowest id of the type, active first)';

CREATE VIEW raw.qb_posting_transactions AS
WITH live (realm_id, txn_type, txn_id, payload, ingested_at_utc) AS (
    SELECT realm_id, 'Invoice', id, payload, ingested_at_utc FROM raw.qb_invoices WHERE deleted_at_utc IS NULL
    UNION ALL SELECT realm_id, 'Payment', id, payload, ingested_at_utc FROM raw.qb_payments WHERE deleted_at_utc IS NULL
    UNION ALL SELECT realm_id, 'SalesReceipt', id, payload, ingested_at_utc FROM raw.qb_sales_receipts WHERE deleted_at_utc IS NULL
    UNION ALL SELECT realm_id, 'RefundReceipt', id, payload, ingested_at_utc FROM raw.qb_refund_receipts WHERE deleted_at_utc IS NULL
    UNION ALL SELECT realm_id, 'CreditMemo', id, payload, ingested_at_utc FROM raw.qb_credit_memos WHERE deleted_at_utc IS NULL
    UNION ALL SELECT realm_id, 'Bill', id, payload, ingested_at_utc FROM raw.qb_bills WHERE deleted_at_utc IS NULL
    UNION ALL SELECT realm_id, 'BillPayment', id, payload, ingested_at_utc FROM raw.qb_bill_payments WHERE deleted_at_utc IS NULL
    UNION ALL SELECT realm_id, 'VendorCredit', id, payload, ingested_at_utc FROM raw.qb_vendor_credits WHERE deleted_at_utc IS NULL
    UNION ALL SELECT realm_id, 'Purchase', id, payload, ingested_at_utc FROM raw.qb_purchases WHERE deleted_at_utc IS NULL
    UNION ALL SELECT realm_id, 'Deposit', id, payload, ingested_at_utc FROM raw.qb_deposits WHERE deleted_at_utc IS NULL
    UNION ALL SELECT realm_id, 'Transfer', id, payload, ingested_at_utc FROM raw.qb_transfers WHERE deleted_at_utc IS NULL
    UNION ALL SELECT realm_id, 'JournalEntry', id, payload, ingested_at_utc FROM raw.qb_journal_entries WHERE deleted_at_utc IS NULL
)
SELECT realm_id, txn_type, txn_id, (payload ->> 'TxnDate')::date AS txn_date, payload,
       ops.timestamptz_or_null(payload #>> '{MetaData,LastUpdatedTime}') AS last_updated_time,
       ingested_at_utc
FROM live;

COMMENT ON VIEW raw.qb_posting_transactions IS
    'The live (not deleted) rows of the 12 transaction tables that post to the ledger, with txn_type (Invoice, Payment, ...), txn_date (TxnDate), MetaData.LastUpdatedTime and load time';

CREATE VIEW raw.qb_sales_lines AS
SELECT t.realm_id, t.txn_type, t.txn_id, l.n AS line_number,
       CASE l.line ->> 'DetailType'
           WHEN 'SalesItemLineDetail' THEN i.payload #>> '{IncomeAccountRef,value}'
           ELSE l.line #>> '{DiscountLineDetail,DiscountAccountRef,value}'
       END AS account_id,
       CASE WHEN l.line ->> 'DetailType' = 'DiscountLineDetail' THEN -1 ELSE 1 END
           * raw.qb_money(l.line -> 'Amount') AS amount
FROM raw.qb_posting_transactions t
CROSS JOIN LATERAL jsonb_array_elements(raw.qb_json_array(t.payload -> 'Line'))
    WITH ORDINALITY AS l(line, n)
LEFT JOIN raw.qb_items i
       ON i.realm_id = t.realm_id
      AND i.id = l.line #>> '{SalesItemLineDetail,ItemRef,value}'
WHERE t.txn_type IN ('Invoice', 'SalesReceipt', 'RefundReceipt', 'CreditMemo')
  AND l.line ->> 'DetailType' IN ('SalesItemLineDetail', 'DiscountLineDetail');

COMMENT ON VIEW raw.qb_sales_lines IS
    'Income lines of sales forms: SalesItemLineDetail to the item''s IncomeAccountRef, DiscountLineDetail to its DiscountAccountRef (negative); amount is income (credit) before the form''s sign';

CREATE VIEW raw.qb_expense_lines AS
SELECT t.realm_id, t.txn_type, t.txn_id, l.n AS line_number,
       CASE l.line ->> 'DetailType'
           WHEN 'AccountBasedExpenseLineDetail'
               THEN l.line #>> '{AccountBasedExpenseLineDetail,AccountRef,value}'
           WHEN 'ItemBasedExpenseLineDetail'
               THEN CASE WHEN i.payload ->> 'Type' = 'Inventory'
                         THEN i.payload #>> '{AssetAccountRef,value}'
                         ELSE i.payload #>> '{ExpenseAccountRef,value}' END
       END AS account_id,
       raw.qb_money(l.line -> 'Amount') AS amount
FROM raw.qb_posting_transactions t
CROSS JOIN LATERAL jsonb_array_elements(raw.qb_json_array(t.payload -> 'Line'))
    WITH ORDINALITY AS l(line, n)
LEFT JOIN raw.qb_items i
       ON i.realm_id = t.realm_id
      AND i.id = l.line #>> '{ItemBasedExpenseLineDetail,ItemRef,value}'
WHERE t.txn_type IN ('Bill', 'VendorCredit', 'Purchase')
  AND l.line ->> 'DetailType' IN ('AccountBasedExpenseLineDetail', 'ItemBasedExpenseLineDetail');

COMMENT ON VIEW raw.qb_expense_lines IS
    'Expense lines of Bill, VendorCredit and Purchase: AccountBasedExpenseLineDetail.AccountRef, or the item''s AssetAccountRef (Inventory) / ExpenseAccountRef; amount is expense (debit) before the form''s sign';

CREATE VIEW raw.qb_journal_lines AS
WITH t AS MATERIALIZED (
    SELECT p.*, d.receivable_account_id, d.payable_account_id, d.undeposited_funds_account_id,
           raw.qb_money(p.payload -> 'TotalAmt') AS total
    FROM raw.qb_posting_transactions p
    LEFT JOIN raw.qb_default_accounts d USING (realm_id)
),
-- The sales and expense lines, read once.
sl AS MATERIALIZED (SELECT * FROM raw.qb_sales_lines),
el AS MATERIALIZED (SELECT * FROM raw.qb_expense_lines),
-- The documents Payment and BillPayment lines link to.
links AS MATERIALIZED (
    SELECT t.realm_id, t.txn_type, t.txn_id, raw.qb_money(l.line -> 'Amount') AS amount,
           k.link ->> 'TxnType' AS doc_type, k.link ->> 'TxnId' AS doc_id
    FROM t
    CROSS JOIN LATERAL jsonb_array_elements(raw.qb_json_array(t.payload -> 'Line')) AS l(line)
    CROSS JOIN LATERAL jsonb_array_elements(raw.qb_json_array(l.line -> 'LinkedTxn')) AS k(link)
    WHERE t.txn_type IN ('Payment', 'BillPayment')
),
-- Those applied to a live Invoice / Bill with a non-zero total.
applied AS MATERIALIZED (
    SELECT k.realm_id, k.txn_type, k.txn_id, k.amount, k.doc_type, k.doc_id,
           doc.total AS doc_total
    FROM links k
    JOIN t doc
      ON doc.realm_id = k.realm_id AND doc.txn_type = k.doc_type AND doc.txn_id = k.doc_id
    WHERE (k.txn_type, k.doc_type) IN (('Payment', 'Invoice'), ('BillPayment', 'Bill'))
      AND doc.total <> 0
),
posting (realm_id, txn_type, txn_id, account_id, amount, bases) AS MATERIALIZED (
    -- Sales forms: income lines (Invoice and SalesReceipt credit, the others debit).
    SELECT s.realm_id, s.txn_type, s.txn_id, s.account_id,
           CASE WHEN s.txn_type IN ('Invoice', 'SalesReceipt') THEN -s.amount ELSE s.amount END,
           CASE WHEN s.txn_type IN ('Invoice', 'CreditMemo') THEN '{Accrual}'::text[]
                ELSE '{Accrual,Cash}'::text[] END
    FROM sl s
    UNION ALL
    -- Sales forms: the other side, A/R (Invoice, CreditMemo) or the deposit account.
    SELECT realm_id, txn_type, txn_id,
           CASE WHEN txn_type IN ('Invoice', 'CreditMemo')
                THEN coalesce(payload #>> '{ARAccountRef,value}', receivable_account_id)
                ELSE coalesce(payload #>> '{DepositToAccountRef,value}', undeposited_funds_account_id)
           END,
           CASE WHEN txn_type IN ('Invoice', 'SalesReceipt') THEN total ELSE -total END,
           CASE WHEN txn_type IN ('Invoice', 'CreditMemo') THEN '{Accrual}'::text[]
                ELSE '{Accrual,Cash}'::text[] END
    FROM t WHERE txn_type IN ('Invoice', 'SalesReceipt', 'RefundReceipt', 'CreditMemo')
    UNION ALL
    -- Payment: money in, and A/R (accrual).
    SELECT realm_id, txn_type, txn_id,
           coalesce(payload #>> '{DepositToAccountRef,value}', undeposited_funds_account_id),
           total, '{Accrual,Cash}'::text[]
    FROM t WHERE txn_type = 'Payment'
    UNION ALL
    SELECT realm_id, txn_type, txn_id,
           coalesce(payload #>> '{ARAccountRef,value}', receivable_account_id), -total,
           '{Accrual}'::text[]
    FROM t WHERE txn_type = 'Payment'
    UNION ALL
    -- BillPayment: money out, and A/P (accrual).
    SELECT realm_id, txn_type, txn_id,
           coalesce(payload #>> '{CheckPayment,BankAccountRef,value}',
                    payload #>> '{CreditCardPayment,CCAccountRef,value}'),
           -total, '{Accrual,Cash}'::text[]
    FROM t WHERE txn_type = 'BillPayment'
    UNION ALL
    SELECT realm_id, txn_type, txn_id,
           coalesce(payload #>> '{APAccountRef,value}', payable_account_id), total,
           '{Accrual}'::text[]
    FROM t WHERE txn_type = 'BillPayment'
    UNION ALL
    -- Cash basis: the income / expense lines of the documents paid, in proportion.
    SELECT a.realm_id, a.txn_type, a.txn_id, s.account_id,
           -round(s.amount * a.amount / a.doc_total, 2), '{Cash}'::text[]
    FROM applied a
    JOIN sl s
      ON s.realm_id = a.realm_id AND s.txn_type = a.doc_type AND s.txn_id = a.doc_id
    UNION ALL
    SELECT a.realm_id, a.txn_type, a.txn_id, e.account_id,
           round(e.amount * a.amount / a.doc_total, 2), '{Cash}'::text[]
    FROM applied a
    JOIN el e
      ON e.realm_id = a.realm_id AND e.txn_type = a.doc_type AND e.txn_id = a.doc_id
    UNION ALL
    -- Cash basis: what a payment does not apply to a known document stays on A/R / A/P.
    SELECT t.realm_id, t.txn_type, t.txn_id,
           CASE WHEN t.txn_type = 'Payment'
                THEN coalesce(t.payload #>> '{ARAccountRef,value}', t.receivable_account_id)
                ELSE coalesce(t.payload #>> '{APAccountRef,value}', t.payable_account_id) END,
           CASE WHEN t.txn_type = 'Payment' THEN -1 ELSE 1 END
               * (t.total - coalesce(sum(a.amount), 0)),
           '{Cash}'::text[]
    FROM t
    LEFT JOIN applied a
      ON a.realm_id = t.realm_id AND a.txn_type = t.txn_type AND a.txn_id = t.txn_id
    WHERE t.txn_type IN ('Payment', 'BillPayment')
    GROUP BY t.realm_id, t.txn_type, t.txn_id, t.payload, t.receivable_account_id,
             t.payable_account_id, t.total
    HAVING t.total - coalesce(sum(a.amount), 0) <> 0
    UNION ALL
    -- Bill, VendorCredit, Purchase: expense lines and the other side.
    SELECT e.realm_id, e.txn_type, e.txn_id, e.account_id,
           CASE WHEN e.txn_type = 'VendorCredit'
                  OR (e.txn_type = 'Purchase' AND t.payload ->> 'Credit' = 'true')
                THEN -e.amount ELSE e.amount END,
           CASE WHEN e.txn_type = 'Purchase' THEN '{Accrual,Cash}'::text[]
                ELSE '{Accrual}'::text[] END
    FROM el e
    JOIN t ON t.realm_id = e.realm_id AND t.txn_type = e.txn_type AND t.txn_id = e.txn_id
    UNION ALL
    SELECT realm_id, txn_type, txn_id,
           CASE WHEN txn_type = 'Purchase' THEN payload #>> '{AccountRef,value}'
                ELSE coalesce(payload #>> '{APAccountRef,value}', payable_account_id) END,
           CASE WHEN txn_type = 'VendorCredit'
                  OR (txn_type = 'Purchase' AND payload ->> 'Credit' = 'true')
                THEN total ELSE -total END,
           CASE WHEN txn_type = 'Purchase' THEN '{Accrual,Cash}'::text[]
                ELSE '{Accrual}'::text[] END
    FROM t WHERE txn_type IN ('Bill', 'VendorCredit', 'Purchase')
    UNION ALL
    -- Deposit: the bank (and cash back) against each line's account.
    SELECT realm_id, txn_type, txn_id, payload #>> '{DepositToAccountRef,value}', total,
           '{Accrual,Cash}'::text[]
    FROM t WHERE txn_type = 'Deposit'
    UNION ALL
    SELECT realm_id, txn_type, txn_id, payload #>> '{CashBack,AccountRef,value}',
           raw.qb_money(payload #> '{CashBack,Amount}'), '{Accrual,Cash}'::text[]
    FROM t WHERE txn_type = 'Deposit' AND raw.qb_money(payload #> '{CashBack,Amount}') <> 0
    UNION ALL
    SELECT t.realm_id, t.txn_type, t.txn_id,
           coalesce(l.line #>> '{DepositLineDetail,AccountRef,value}',
                    CASE WHEN jsonb_array_length(raw.qb_json_array(l.line -> 'LinkedTxn')) > 0
                         THEN t.undeposited_funds_account_id END),
           -raw.qb_money(l.line -> 'Amount'), '{Accrual,Cash}'::text[]
    FROM t
    CROSS JOIN LATERAL jsonb_array_elements(raw.qb_json_array(t.payload -> 'Line')) AS l(line)
    WHERE t.txn_type = 'Deposit' AND raw.qb_money(l.line -> 'Amount') IS NOT NULL
    UNION ALL
    -- Transfer.
    SELECT realm_id, txn_type, txn_id, payload #>> '{ToAccountRef,value}',
           raw.qb_money(payload -> 'Amount'), '{Accrual,Cash}'::text[]
    FROM t WHERE txn_type = 'Transfer'
    UNION ALL
    SELECT realm_id, txn_type, txn_id, payload #>> '{FromAccountRef,value}',
           -raw.qb_money(payload -> 'Amount'), '{Accrual,Cash}'::text[]
    FROM t WHERE txn_type = 'Transfer'
    UNION ALL
    -- JournalEntry: each line on its side.
    SELECT t.realm_id, t.txn_type, t.txn_id,
           l.line #>> '{JournalEntryLineDetail,AccountRef,value}',
           CASE WHEN l.line #>> '{JournalEntryLineDetail,PostingType}' = 'Credit' THEN -1 ELSE 1 END
               * raw.qb_money(l.line -> 'Amount'),
           '{Accrual,Cash}'::text[]
    FROM t
    CROSS JOIN LATERAL jsonb_array_elements(raw.qb_json_array(t.payload -> 'Line')) AS l(line)
    WHERE t.txn_type = 'JournalEntry' AND l.line ->> 'DetailType' = 'JournalEntryLineDetail'
)
SELECT p.realm_id, b.basis, p.txn_type, p.txn_id, t.txn_date, p.account_id, p.amount,
       t.last_updated_time, t.ingested_at_utc
FROM posting p
JOIN t ON t.realm_id = p.realm_id AND t.txn_type = p.txn_type AND t.txn_id = p.txn_id
CROSS JOIN LATERAL unnest(p.bases) AS b(basis)
WHERE p.amount IS NOT NULL AND p.amount <> 0;

COMMENT ON VIEW raw.qb_journal_lines IS
    'Double-entry postings of every live transaction in raw, per basis (Accrual, Cash): amount > 0 debits, < 0 credits account_id on txn_date. Rules and limits: see migration 0012_trial_balance.sql';

CREATE FUNCTION raw.qb_trial_balance(p_basis text, p_as_of date)
RETURNS TABLE (realm_id text, account_id text, account_name text, classification text,
               balance numeric, debit numeric, credit numeric)
LANGUAGE sql STABLE AS $$
WITH lines AS (
    SELECT j.realm_id, j.account_id, j.amount, j.txn_date,
           coalesce(a.payload ->> 'Classification' IN ('Revenue', 'Expense'), false) AS is_pl
    FROM raw.qb_journal_lines j
    LEFT JOIN raw.qb_accounts a ON a.realm_id = j.realm_id AND a.id = j.account_id
    WHERE j.basis = p_basis AND j.txn_date <= p_as_of
),
balances (realm_id, account_id, label, balance) AS (
    SELECT l.realm_id, l.account_id, CASE WHEN l.account_id IS NULL THEN '(no account)' END,
           l.amount
    FROM lines l
    WHERE NOT l.is_pl OR l.txn_date >= date_trunc('year', p_as_of)::date
    UNION ALL
    -- Earlier fiscal years' profit and loss, rolled into Retained Earnings.
    SELECT l.realm_id, d.retained_earnings_account_id,
           CASE WHEN d.retained_earnings_account_id IS NULL THEN 'Retained Earnings' END,
           l.amount
    FROM lines l
    LEFT JOIN raw.qb_default_accounts d ON d.realm_id = l.realm_id
    WHERE l.is_pl AND l.txn_date < date_trunc('year', p_as_of)::date
),
summed AS (
    SELECT b.realm_id, b.account_id, b.label, sum(b.balance) AS balance
    FROM balances b GROUP BY b.realm_id, b.account_id, b.label
)
SELECT s.realm_id, s.account_id, coalesce(a.payload ->> 'Name', s.label, s.account_id),
       a.payload ->> 'Classification', s.balance,
       CASE WHEN s.balance > 0 THEN s.balance ELSE 0 END,
       CASE WHEN s.balance < 0 THEN -s.balance ELSE 0 END
FROM summed s
LEFT JOIN raw.qb_accounts a ON a.realm_id = s.realm_id AND a.id = s.account_id
WHERE s.balance <> 0
$$;

COMMENT ON FUNCTION raw.qb_trial_balance(text, date) IS
    'Trial Balance computed from raw.qb_journal_lines on basis (Accrual or Cash) as of a day: balance-sheet accounts cumulative, profit-and-loss accounts for the calendar year to date, earlier years in Retained Earnings; zero balances left out. Example: SELECT * FROM raw.qb_trial_balance(''Accrual'', DATE ''2026-03-31'')';

CREATE VIEW raw.qb_trial_balance_accrual AS
SELECT m.as_of, tb.*
FROM (SELECT (generate_series(date_trunc('month', min(txn_date)),
                              date_trunc('month', greatest(max(txn_date), current_date)),
                              interval '1 month') + interval '1 month - 1 day')::date AS as_of
      FROM raw.qb_journal_lines WHERE basis = 'Accrual') m
CROSS JOIN LATERAL raw.qb_trial_balance('Accrual', m.as_of) tb;

CREATE VIEW raw.qb_trial_balance_cash AS
SELECT m.as_of, tb.*
FROM (SELECT (generate_series(date_trunc('month', min(txn_date)),
                              date_trunc('month', greatest(max(txn_date), current_date)),
                              interval '1 month') + interval '1 month - 1 day')::date AS as_of
      FROM raw.qb_journal_lines WHERE basis = 'Cash') m
CROSS JOIN LATERAL raw.qb_trial_balance('Cash', m.as_of) tb;

COMMENT ON VIEW raw.qb_trial_balance_accrual IS
    'Accrual-basis Trial Balance computed from raw as of every month end (as_of), as QuickBooks'' TrialBalance with end_date = as_of. Filter on as_of: SELECT * FROM raw.qb_trial_balance_accrual WHERE as_of = DATE ''2026-03-31''';
COMMENT ON VIEW raw.qb_trial_balance_cash IS
    'Cash-basis Trial Balance computed from raw as of every month end (as_of), as QuickBooks'' TrialBalance with end_date = as_of and accounting_method = Cash';
