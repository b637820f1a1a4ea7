-- Financial reports (issue 16): each answer stored twice, as returned (`raw.qb_reports`) and
-- flattened to one row per cell (`raw.qb_report_rows`), so that plain SQL answers "income by
-- account by month" without reading JSON.
--
-- A report is keyed by company, report, basis, period and column summary. When QuickBooks
-- refuses a range as too large, the range is read in smaller pieces (halves, down to a day) and
-- each piece is a report of its own here, with the piece's period; a truncated answer is never
-- stored. An unchanged re-read writes nothing: `content_hash` (SHA-256 of the answer without
-- its volatile `Header.Time`) is compared first, as the entity tables compare `payload_hash`.

CREATE TABLE raw.qb_reports (
    realm_id                 text        NOT NULL,
    report                   text        NOT NULL CHECK (report IN (
        'ProfitAndLoss', 'BalanceSheet', 'TrialBalance', 'GeneralLedger', 'CashFlow',
        'AgedReceivables', 'AgedPayables')),
    basis                    text        NOT NULL CHECK (basis IN ('Accrual', 'Cash', '')),
    period_start             date        NOT NULL,
    period_end               date        NOT NULL,
    summarize_column_by      text        NOT NULL DEFAULT '',
    params                   jsonb       NOT NULL,
    payload                  jsonb       NOT NULL,
    content_hash             bytea       NOT NULL,
    report_time              timestamptz,
    currency                 text,
    no_report_data           boolean,
    total_mismatches         integer     NOT NULL DEFAULT 0,
    row_count                integer     NOT NULL DEFAULT 0,
    fetched_at_utc           timestamptz NOT NULL,
    run_id                   uuid,
    extract_window_start_utc timestamptz NOT NULL,
    extract_window_end_utc   timestamptz NOT NULL,
    request_payload          jsonb       NOT NULL,
    CHECK (period_end >= period_start),
    PRIMARY KEY (realm_id, report, basis, period_start, period_end, summarize_column_by)
);

CREATE INDEX qb_reports_fetched ON raw.qb_reports (realm_id, report, fetched_at_utc DESC);

COMMENT ON TABLE raw.qb_reports IS
    'One QuickBooks report answer per company, report, basis, period and column summary, as returned; its cells are in raw.qb_report_rows';
COMMENT ON COLUMN raw.qb_reports.report IS
    'The report endpoint name (reports/{report}), also the answer''s Header.ReportName';
COMMENT ON COLUMN raw.qb_reports.basis IS
    'accounting_method: Accrual or Cash as asked (or as the answer''s Header.ReportBasis says when none was asked); empty for reports without a basis (aging)';
COMMENT ON COLUMN raw.qb_reports.period_start IS
    'First day of the period read (inclusive). A range QuickBooks refused as too large is stored as several pieces, each with its own period; as-of reports (aging) have period_start = period_end = the report date';
COMMENT ON COLUMN raw.qb_reports.period_end IS
    'Last day of the period read (inclusive); the report_date of as-of reports';
COMMENT ON COLUMN raw.qb_reports.summarize_column_by IS
    'summarize_column_by as asked (Month, Customers, ...); empty when not asked (one Total column)';
COMMENT ON COLUMN raw.qb_reports.params IS
    'The query parameters sent (start_date/end_date or report_date, accounting_method, summarize_column_by), without minorversion';
COMMENT ON COLUMN raw.qb_reports.payload IS
    'The report exactly as QuickBooks returned it (Header, Columns, Rows), from the fetch that first brought this content';
COMMENT ON COLUMN raw.qb_reports.content_hash IS
    'SHA-256 of the answer without Header.Time (which changes on every read): equal hashes mean an unchanged report, and then nothing is written';
COMMENT ON COLUMN raw.qb_reports.report_time IS
    'Header.Time: when QuickBooks produced the stored answer (NULL when absent or malformed)';
COMMENT ON COLUMN raw.qb_reports.no_report_data IS
    'Header option NoReportData: true when QuickBooks says the period holds no data';
COMMENT ON COLUMN raw.qb_reports.total_mismatches IS
    'Section summaries that the rows of the answer do not add up to (0 for a consistent report; Intuit''s shortened documentation samples have some)';
COMMENT ON COLUMN raw.qb_reports.row_count IS
    'Number of rows of raw.qb_report_rows for this report';
COMMENT ON COLUMN raw.qb_reports.fetched_at_utc IS
    'When this content was first fetched and written; an unchanged re-read does not move it';
COMMENT ON COLUMN raw.qb_reports.run_id IS
    'The run that wrote this content (NULL when not written by a run)';
COMMENT ON COLUMN raw.qb_reports.extract_window_start_utc IS
    'Start of the run window that asked for it; a window read in pieces gives each piece the same window';
COMMENT ON COLUMN raw.qb_reports.extract_window_end_utc IS
    'End (exclusive) of the run window that asked for it';
COMMENT ON COLUMN raw.qb_reports.request_payload IS
    'What was asked: endpoint path, query parameters and the Intuit transaction id (intuit_tid) of the answer';

-- One row per non-empty cell of a report, beyond each line's label (which is `name`).
CREATE TABLE raw.qb_report_rows (
    realm_id             text    NOT NULL,
    report               text    NOT NULL,
    basis                text    NOT NULL,
    period_start         date    NOT NULL,
    period_end           date    NOT NULL,
    summarize_column_by  text    NOT NULL,
    line                 integer NOT NULL,
    column_index         integer NOT NULL,
    section_path         text    NOT NULL,
    section_path_parts   text[]  NOT NULL,
    section_id           text,
    report_group         text,
    row_type             text    NOT NULL
        CHECK (row_type IN ('data', 'section_summary', 'total', 'section_header')),
    account_or_entity_id text,
    name                 text,
    column_title         text    NOT NULL,
    column_type          text,
    column_key           text,
    column_period_start  date    NOT NULL,
    column_period_end    date    NOT NULL,
    value                numeric,
    text                 text    NOT NULL,
    cell_id              text,
    PRIMARY KEY (realm_id, report, basis, period_start, period_end, summarize_column_by, line,
                 column_index),
    FOREIGN KEY (realm_id, report, basis, period_start, period_end, summarize_column_by)
        REFERENCES raw.qb_reports (realm_id, report, basis, period_start, period_end,
                                   summarize_column_by)
        ON DELETE CASCADE
);

-- "By account" questions across reports and periods.
CREATE INDEX qb_report_rows_account
    ON raw.qb_report_rows (realm_id, report, account_or_entity_id, column_period_start);

COMMENT ON TABLE raw.qb_report_rows IS
    'One row per non-empty cell of a report of raw.qb_reports (a re-read that changed replaces them all). Example, income by account by month: SELECT account_or_entity_id, name, column_period_start, sum(value) FROM raw.qb_report_rows WHERE report = ''ProfitAndLoss'' AND row_type = ''data'' AND section_path_parts[1] = ''Income'' GROUP BY 1, 2, 3';
COMMENT ON COLUMN raw.qb_report_rows.line IS
    'Document-order number of the report line the cell is on (data rows, section headers and summaries counted as met), shared by the cells of one line';
COMMENT ON COLUMN raw.qb_report_rows.column_index IS
    'Leaf column index (1 and up; column 0 is the line''s label, stored in name)';
COMMENT ON COLUMN raw.qb_report_rows.section_path IS
    'Labels of the enclosing sections, outermost first, joined with '' > '' (''Income > Sales''); a section summary''s path includes its section; empty at top level and for computed totals';
COMMENT ON COLUMN raw.qb_report_rows.section_path_parts IS
    'The same labels as an array (section_path_parts[1] = ''Income'')';
COMMENT ON COLUMN raw.qb_report_rows.section_id IS
    'Id on the innermost enclosing section''s header (the account, in a General Ledger)';
COMMENT ON COLUMN raw.qb_report_rows.report_group IS
    'The row''s group (Income, Expenses, GrossProfit, NetIncome, GrandTotal, ...), or for a data row without one, its section''s';
COMMENT ON COLUMN raw.qb_report_rows.row_type IS
    'data (a data row), section_summary (a section''s subtotal, "Total Income"), total (a computed or grand total: Gross Profit, Net Income, TOTAL), section_header (a value on a section''s header line)';
COMMENT ON COLUMN raw.qb_report_rows.account_or_entity_id IS
    'The id in the line''s first cell (account, customer, vendor), when the report gives one';
COMMENT ON COLUMN raw.qb_report_rows.name IS
    'The line''s label (first cell): "Sales", "Total Income", "Beginning Balance"';
COMMENT ON COLUMN raw.qb_report_rows.column_title IS
    'The column''s title ("Total", "Jan 2024", "Debit", "1 - 30"); a sub-column''s is prefixed by its parents'' ("Jan 2024 > % of Income")';
COMMENT ON COLUMN raw.qb_report_rows.column_key IS
    'The column''s ColKey metadata, when sent';
COMMENT ON COLUMN raw.qb_report_rows.column_period_start IS
    'First day the column covers: its StartDate, or the report''s period_start when the column has none';
COMMENT ON COLUMN raw.qb_report_rows.column_period_end IS
    'Last day the column covers: its EndDate, or the report''s period_end when the column has none';
COMMENT ON COLUMN raw.qb_report_rows.value IS
    'The amount, exact, for amount columns (Money, Rate, *_amount, ...); NULL for text columns (dates, memos, names)';
COMMENT ON COLUMN raw.qb_report_rows.text IS
    'The cell''s text as sent';
COMMENT ON COLUMN raw.qb_report_rows.cell_id IS
    'The cell''s own id (in a General Ledger: the transaction, name or split account), when sent';
