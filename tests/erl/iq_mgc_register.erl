%% A real MGC (Erlang/OTP megaco) that waits for one ServiceChange from imsagw, answers it
%% with version 3, prints what it received and exits 0 (or 1 after 20 s without one).
%% Usage: erl -noshell -pa DIR -run iq_mgc_register run PORT
-module(iq_mgc_register).
-include_lib("megaco/include/megaco.hrl").
-include_lib("megaco/include/megaco_message_v3.hrl").
-export([run/1]).
-export([handle_connect/3, handle_disconnect/4, handle_syntax_error/4,
         handle_message_error/4, handle_trans_request/4, handle_trans_long_request/4,
         handle_trans_reply/5, handle_trans_ack/5, handle_unexpected_trans/4,
         handle_trans_request_abort/5, handle_segment_reply/6]).

run([PortS]) ->
    Port = list_to_integer(PortS),
    ok = megaco:start(),
    Mid = {ip4Address, #'IP4Address'{address = [127, 0, 0, 1], portNumber = Port}},
    ok = megaco:start_user(Mid, [{user_mod, ?MODULE}, {user_args, [self()]},
                                 {protocol_version, 3}]),
    RH0 = megaco:user_info(Mid, receive_handle),
    RH = RH0#megaco_receive_handle{encoding_mod = megaco_compact_text_encoder,
                                   encoding_config = [], send_mod = megaco_udp},
    {ok, Sup} = megaco_udp:start_transport(),
    {ok, _SH, _Ctrl} = megaco_udp:open(Sup, [{port, Port}, {receive_handle, RH},
                                            {udp_options, [{ip, {127, 0, 0, 1}}]}]),
    io:format("READY~n"),
    receive
        {sc, Parm} ->
            Prof = Parm#'ServiceChangeParm'.serviceChangeProfile,
            io:format("SC method=~w reason=~w version=~w profile=~s/~w~n",
                      [Parm#'ServiceChangeParm'.serviceChangeMethod,
                       Parm#'ServiceChangeParm'.serviceChangeReason,
                       Parm#'ServiceChangeParm'.serviceChangeVersion,
                       Prof#'ServiceChangeProfile'.profileName,
                       Prof#'ServiceChangeProfile'.version]),
            timer:sleep(500),
            halt(0)
    after 20000 ->
            io:format("TIMEOUT~n"),
            halt(1)
    end.

handle_connect(_CH, _V, _Pid) -> ok.
handle_disconnect(_CH, _V, _R, _Pid) -> ok.
handle_syntax_error(_RH, _V, _E, _Pid) -> reply.
handle_message_error(_CH, _V, _E, _Pid) -> no_reply.
handle_trans_request(_CH, _V,
                     [#'ActionRequest'{contextId = ?megaco_null_context_id,
                                       commandRequests = [#'CommandRequest'{command = {serviceChangeReq,
                                           #'ServiceChangeRequest'{terminationID = Tids,
                                                                   serviceChangeParms = P}}}]}],
                     Pid) ->
    Pid ! {sc, P},
    Res = #'ServiceChangeResParm'{serviceChangeVersion = 3},
    {discard_ack, [#'ActionReply'{contextId = ?megaco_null_context_id,
                                  commandReply = [{serviceChangeReply,
                                      #'ServiceChangeReply'{terminationID = Tids,
                                          serviceChangeResult = {serviceChangeResParms, Res}}}]}]};
handle_trans_request(_CH, _V, _Actions, _Pid) ->
    {discard_ack, {error, #'ErrorDescriptor'{errorCode = ?megaco_not_implemented}}}.
handle_trans_long_request(_CH, _V, _Data, _Pid) -> ignore.
handle_trans_reply(_CH, _V, _R, _D, _Pid) -> ok.
handle_trans_ack(_CH, _V, _S, _D, _Pid) -> ok.
handle_unexpected_trans(_CH, _V, _T, _Pid) -> ok.
handle_trans_request_abort(_CH, _V, _T, _H, _Pid) -> ok.
handle_segment_reply(_CH, _V, _T, _S, _L, _Pid) -> ok.
