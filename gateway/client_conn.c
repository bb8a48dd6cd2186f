/* placeholder: replaced by the implementation */
typedef int gw_placeholder_client_conn_t;
